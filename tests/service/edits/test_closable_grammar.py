"""The closable rule as a grammar refuses and ends exactly where the lexer does, in the grammar
engines of llama.cpp (its server's `grammar`) and of vLLM (xgrammar, `structured_outputs`)."""

from __future__ import annotations

import ctypes
import math
import random
from collections.abc import Callable, Iterator

import llama_cpp
import pytest
import xgrammar

from service.edits import closable
from service.edits.closable_grammar import python_block_grammar
from service.llm.models import default_model_path

Verdicts = list[bool | None]  # per character: may the answer end here; None: refused here
ALPHABET = [*"()[]{}'\"#\\` \t\nax", "'''", '"""', "\n```\n", "```python\n", "```bash\n", "  ",
            "pyth", "\r", "\n```py3 \n", "\\\n"]
HEADS = ["```python\n", "Here:\n```\n", "", "```Py3 \n", "x\n``` python\n", "```PYTHON\n",
         "```python3\n", "``` pyt\n", "```python x\n", "  ````py\n", "``\n"]
ANSWERS = [
    ("Here is the improved program:\n```python\nimport math\n\n\ndef solve(xs: list[int]) -> "
    "float:\n    \"\"\"Returns the spread.\n\n    It is `max - min`.\n    \"\"\"\n    ys = "
    "sorted(xs)  # ascending ) ]\n    pairs = {k: [v, (v + 1)] for k, v in enumerate(ys)}\n    "
    "return f'{ys[-1] - ys[0]:.3f}' + '' + \"\"\n```\nIt is faster.\n"),
    "```bash\nls (\n```\n```python\nx = (1,\n     2)\n```\n```python\ny = [\n```",
    "```python\ns = '''a\n```",
    "```python\nx = 'it\\'s' + 'line \\\n  next'\n  ```done\nmore prose ) (\n",
]


def lexer_verdicts(text: str) -> Verdicts:
    """Returns the lexer's verdict after each character of text, up to its first refusal."""
    state: closable.Lexer | None = closable.Lexer()
    out: Verdicts = []
    for ch in text:
        state = closable.step(state, ch)
        out.append(None if state is None else state.closable())
        if state is None:
            break
    return out


class LlamaCppEngine:
    """llama.cpp's grammar sampler over SmolLM2's vocabulary, one character a token."""

    def __init__(self, grammar: str) -> None:
        self.llama = llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self.grammar, self.eos = grammar.encode(), self.llama.token_eos()
        self.tokens: dict[str, int] = {}

    def token(self, ch: str) -> int:
        if ch not in self.tokens:
            ids = self.llama.tokenize(ch.encode(), add_bos=False, special=False)
            assert len(ids) == 1 and self.llama.detokenize(ids).decode() == ch, (ch, ids)
            self.tokens[ch] = ids[0]
        return self.tokens[ch]

    def verdicts(self, text: str) -> Verdicts:
        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, self.grammar, b"root")
        assert sampler, "llama.cpp did not parse the grammar"
        out: Verdicts = []
        try:
            for ch in text:
                if not self.allows(sampler, self.token(ch)):
                    return [*out, None]
                llama_cpp.llama_sampler_accept(sampler, self.token(ch))
                out.append(self.allows(sampler, self.eos))
            return out
        finally:
            llama_cpp.llama_sampler_free(sampler)

    @staticmethod
    def allows(sampler: object, token: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
        return not math.isinf(data[0].logit)


class XGrammarEngine:
    """vLLM's grammar engine over a vocabulary of single characters and a stop token."""

    def __init__(self, grammar: str) -> None:
        chars = sorted({c for piece in ALPHABET + HEADS + ANSWERS for c in piece})
        self.ids = {c: i for i, c in enumerate(chars)}
        self.stop = len(chars)
        info = xgrammar.TokenizerInfo([*chars, "</s>"], stop_token_ids=[self.stop])
        self.compiled = xgrammar.GrammarCompiler(info).compile_grammar(
            xgrammar.Grammar.from_ebnf(grammar))

    def verdicts(self, text: str) -> Verdicts:
        matcher = xgrammar.GrammarMatcher(self.compiled)
        out: Verdicts = []
        for ch in text:
            if not matcher.accept_token(self.ids[ch]):
                return [*out, None]
            out.append(matcher.fork().accept_token(self.stop))
        return out


@pytest.fixture(scope="module", params=["llama.cpp", "xgrammar"])
def engine(request: pytest.FixtureRequest) -> Callable[[str], Verdicts]:
    kind = LlamaCppEngine if request.param == "llama.cpp" else XGrammarEngine
    return kind(python_block_grammar()).verdicts


def random_answers(n: int, seed: int = 0) -> Iterator[str]:
    """Yields n answers made of the characters and pieces the rule turns on."""
    rng = random.Random(seed)
    for _ in range(n):
        yield rng.choice(HEADS) + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30)))


def test_the_grammar_refuses_and_ends_where_the_lexer_does(engine):
    texts = [*ANSWERS, *random_answers(1500)]
    disagreements = [t for t in texts if engine(t) != lexer_verdicts(t)]
    outcomes = {None if v[-1] is None else v[-1] for v in map(lexer_verdicts, texts)}
    assert outcomes == {None, True, False}  # refused, closable and open answers were all tried
    assert disagreements == []


def test_a_real_answer_is_closable_and_a_wrong_closer_is_refused(engine):
    assert engine(ANSWERS[0])[-1] is True
    assert engine("```python\nx = (1]\n")[-1] is None
    assert engine("```python\nx = (1,\n")[-1] is False
