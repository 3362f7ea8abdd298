r"""The closable rule (service/edits/closable.py) as a GBNF grammar, for servers that constrain
decoding themselves: llama.cpp's server (`grammar`) and vLLM (`structured_outputs.grammar`).

A backend decoding in this process follows the rule with the lexer; a remote server cannot run
it, so it gets the same rule written as a grammar: one rule per lexer state (prose lines and the
fence they may be, code, strings, comments), the brackets as nesting. tests/service/edits/
test_closable_grammar.py holds the two to agreement, character by character, with llama.cpp's
own grammar engine. Two simplifications, on text a model rarely writes: a fence's whitespace and
language tag are read as ASCII (\s and \w are Unicode in the lexer), and a fence line is read
whole (the lexer reads its first 40 characters).
"""

from __future__ import annotations

from service.edits.common import PYTHON_TAGS

WS = " \t\r\x0b\x0c"  # \s of the fence pattern, ASCII
TAG = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-"  # \w+.- , ASCII
OPEN = {"(": ")", "[": "]", "{": "}"}
QUOTES = {"'": "q1", '"': "q2"}
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x0b": "\\x0B", "\x0c": "\\x0C",
            "\\": "\\\\", '"': '\\"'}
_IN_CLASS = {**_ESCAPES, "[": "\\[", "]": "\\]", "^": "\\^"}


def _esc(chars: str, escapes: dict[str, str] = _ESCAPES) -> str:
    """Returns chars escaped for a GBNF literal (or, with _IN_CLASS, a character class)."""
    return "".join(escapes.get(c, c) for c in chars)


def _class(chars: str) -> str:
    """Returns the body of a GBNF character class of chars, each once: the hex escapes last
    (xgrammar reads every hex digit after one), then a '-'."""
    unique = dict.fromkeys(chars)
    body = sorted((c for c in unique if c != "-"), key=lambda c: _IN_CLASS.get(c, "")[:2] == "\\x")
    return _esc("".join(body), _IN_CLASS) + ("-" if "-" in unique else "")


def lit(text: str) -> str:
    """Returns the GBNF literal for text."""
    return f'"{_esc(text)}"'


def any_but(chars: str) -> str:
    """Returns the GBNF class of every character but chars."""
    return f"[^{_class(chars)}]"


def one_of(chars: str) -> str:
    """Returns the GBNF class of chars."""
    return f"[{_class(chars)}]"


class Rules:
    """GBNF rules under construction: each a list of alternatives."""

    def __init__(self) -> None:
        self.rules: dict[str, list[str]] = {}

    def add(self, name: str, *alternatives: str) -> None:
        """Adds alternatives to rule name."""
        self.rules.setdefault(name, []).extend(alternatives)

    def text(self) -> str:
        """Returns the grammar, root first."""
        return "\n".join(f"{name} ::= " + " | ".join(alts) for name, alts in self.rules.items())


def _lines(g: Rules, mode: str, nonfence: str, python: str, other: str) -> None:
    """Adds the states of a prose or other-language line, reading whether it is a fence: at its
    end it goes on to nonfence, python (a ```python fence: tag '', py, py3, python, python3, any
    case) or other (a fence with another tag)."""
    s = {name: f"{mode}-{name}" for name in ("l0", "b1", "b2", "b3", "w1", "wpy", "wo", "n",
                                             "t-o", *(f"t-{p}" for p in _prefixes()))}
    nl = lit("\n")
    not_line = WS + TAG + "`\n"
    g.add(s["l0"], f"{one_of(WS)} {s['l0']}", f"{lit('`')} {s['b1']}", f"{nl} {nonfence}",
          f"{any_but(WS + '`' + chr(10))} {s['n']}", '""')
    for state, then in (("b1", "b2"), ("b2", "b3")):  # one, two backticks
        g.add(s[state], f"{lit('`')} {s[then]}", f"{nl} {nonfence}",
              f"{any_but('`' + chr(10))} {s['n']}", '""')
    g.add(s["n"], f"{any_but(chr(10))} {s['n']}", f"{nl} {nonfence}", '""')
    for state in ("b3", "w1"):  # the backticks, then the blank before the tag
        more = [f"{lit('`')} {s['b3']}"] if state == "b3" else []
        g.add(s[state], *more, f"{one_of(WS)} {s['w1']}", f"{one_of('pP')} {s['t-p']}",
              f"{_tag_but('pP')} {s['t-o']}", f"{nl} {python}", f"{any_but(not_line)} {s['n']}",
              '""')
    prefixes = _prefixes()
    for prefix, is_tag in prefixes.items():
        nexts = {p[-1]: f"t-{p}" for p in prefixes if p[:-1] == prefix}
        alts = [f"{one_of(c + c.upper() if c.isalpha() else c)} {s[n]}" for c, n in nexts.items()]
        taken = "".join(c + c.upper() for c in nexts)
        alts.append(f"{_tag_but(taken)} {s['t-o']}")
        after, end = (s["wpy"], python) if is_tag else (s["wo"], other)
        g.add(s[f"t-{prefix}"], *alts, f"{one_of(WS)} {after}", f"{nl} {end}",
              f"{any_but(not_line)} {s['n']}", '""')
    g.add(s["t-o"], f"{one_of(TAG)} {s['t-o']}", f"{one_of(WS)} {s['wo']}", f"{nl} {other}",
          f"{any_but(not_line)} {s['n']}", '""')
    for state, end in (("wpy", python), ("wo", other)):
        g.add(s[state], f"{one_of(WS)} {s[state]}", f"{nl} {end}",
              f"{any_but(WS + chr(10))} {s['n']}", '""')


def _code(g: Rules, x: str, closing: str) -> None:
    """Adds the code states of context x: "t", the block's top level (it may end there, and a
    backtick on a blank line is the closing fence), or "i", inside brackets (it ends where its
    closer comes; a backtick is never code there)."""
    top = x == "t"
    c, cb, cm = f"c-{x}", f"c-{x}-b", f"cm-{x}"
    end = ['""'] if top else []
    plain = any_but("'\"`#()[]{}\n \t")
    for state in (cb, c, f"p-q1-{x}", f"p-q2-{x}"):
        alts = []
        for quote, q in QUOTES.items():
            opened = f"tq-{q}-{x}" if state == f"p-{q}-{x}" else f"sq-{q}-{x}-e"
            alts.append(f"{lit(quote)} {opened}")
        if top and state == cb:
            alts.append(f"{lit('`')} {closing}")
        alts += [f"{lit('#')} {cm}", f"{lit(chr(10))} {cb}",
                 f"{one_of(' ' + chr(9))} {cb if state == cb else c}", f"{plain} {c}"]
        alts += [f"{lit(o)} c-i {lit(cl)} {c}" for o, cl in OPEN.items()]
        g.add(state, *alts, '""')  # inside brackets: the closer follows
    g.add(cm, f"{any_but(chr(10))} {cm}", f"{lit(chr(10))} {cb}", *end)
    for quote, q in QUOTES.items():
        _strings(g, quote, f"{q}-{x}", c, f"p-{q}-{x}")


def _strings(g: Rules, quote: str, name: str, code: str, pair: str) -> None:
    """Adds the states of a one-line and a triple-quoted string of quote (rules named after
    name) that go back to code when they close (pair: a one-line string closed empty)."""
    s, t = f"sq-{name}", f"tq-{name}"
    nl, bs = lit("\n"), lit("\\")
    inner = any_but(quote + "\\\n")  # a backtick too: a fence only starts a blank line
    first = any_but(" \t" + quote + "\\\n`")
    g.add(f"{s}-e", f"{lit(quote)} {pair}", f"{bs} {s}-esc", f"{inner} {s}")
    g.add(s, f"{lit(quote)} {code}", f"{bs} {s}-esc", f"{inner} {s}")
    g.add(f"{s}-esc", f"{nl} {s}-b", f"{any_but(chr(10))} {s}")
    g.add(f"{s}-b", f"{one_of(' ' + chr(9))} {s}-b", f"{lit(quote)} {code}", f"{bs} {s}-esc",
          f"{first} {s}")
    g.add(t, f"{lit(quote)} {t}-r1", f"{bs} {t}-esc", f"{nl} {t}-b", f"{inner} {t}")
    g.add(f"{t}-b", f"{one_of(' ' + chr(9) + chr(10))} {t}-b", f"{lit(quote)} {t}-r1",
          f"{bs} {t}-esc", f"{first} {t}")
    g.add(f"{t}-r1", f"{lit(quote)} {t}-r2", f"{bs} {t}-esc", f"{nl} {t}-b", f"{inner} {t}")
    g.add(f"{t}-r2", f"{lit(quote)} {code}", f"{bs} {t}-esc", f"{nl} {t}-b", f"{inner} {t}")
    g.add(f"{t}-esc", f"{nl} {t}-b", f"{any_but(chr(10))} {t}")


def python_block_grammar() -> str:
    """Returns the rule of a rewrite answer as GBNF: its ```python blocks stay closable."""
    g = Rules()
    g.add("root", "prose-l0")
    _lines(g, "prose", "prose-l0", "c-t-b", "other-l0")
    _lines(g, "other", "other-l0", "prose-l0", "prose-l0")
    _code(g, "t", "closing")
    _code(g, "i", "closing")
    g.add("closing", f"{any_but(chr(10))} closing", f"{lit(chr(10))} prose-l0", '""')
    return g.text()


def _prefixes() -> dict[str, bool]:
    """Returns the lowercase prefixes of the Python tags (but ''), each with whether it is one."""
    tags = {t for t in PYTHON_TAGS if t}
    return {t[:i]: t[:i] in tags for t in tags for i in range(1, len(t) + 1)}


def _tag_but(chars: str) -> str:
    """Returns the class of the tag characters but chars."""
    return one_of("".join(c for c in TAG if c not in chars))
