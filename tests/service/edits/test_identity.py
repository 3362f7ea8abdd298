"""service.edits.identity: a program's hash follows its compiled code, not its text's layout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.edits.identity import code_hash, compiled

SAME = [
    ("def f(x):\n    return x+1\n", "def f(x):  # add one\n\n    return (x + 1)\n"),
    ("x = 'a'\n", 'x = "a"\n'),
    ("x = [1,\n     2,\n]\n", "x = [1, 2]\n"),
    ("def f(a):\n    return a in {'x', 'y', 'z'}\n",
     "def f(a):\n    return a in {'z', 'x', 'y'}\n"),
    ("y = 2 * 3\n", "y = 6\n"),  # folded by the compiler: the same program
]
DIFFERENT = [
    ("x = 1\n", "x = 2\n"),
    ("def f(x):\n    return x\n", "def f(y):\n    return y\n"),
    ("def f():\n    '''Doc.'''\n    return 1\n", "def f():\n    return 1\n"),
    ("x = 1.0\n", "x = 1\n"),
    ("x = 0.0\n", "x = -0.0\n"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_layout_comments_and_folded_constants_do_not_make_a_new_program(a: str, b: str) -> None:
    assert code_hash(a) == code_hash(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_names_constants_and_docstrings_make_a_new_program(a: str, b: str) -> None:
    assert code_hash(a) != code_hash(b)


def test_the_hash_of_a_set_literal_is_the_same_in_every_process() -> None:
    code = "def f(a):\n    return a in {'alpha', 'beta', 'gamma', 'delta'}\n"
    program = f"from service.edits.identity import code_hash; print(code_hash({code!r}))"
    hashes = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": seed}).stdout.strip()
              for seed in ("1", "2", "3")}
    assert hashes == {code_hash(code)}


def test_a_folder_program_counts_each_file_by_its_path_and_code() -> None:
    one = "# ==== file: a.py ====\nx = 1\n# ==== file: b.py ====\ny = 2\n"
    moved = "# ==== file: a.py ====\ny = 2\n# ==== file: b.py ====\nx = 1\n"
    spaced = "# ==== file: a.py ====\nx = (1)  # one\n# ==== file: b.py ====\n\ny = 2\n"
    assert code_hash(one) != code_hash(moved)
    assert code_hash(one) == code_hash(spaced)


def test_source_is_compiled_once_and_errors_are_returned_not_raised() -> None:
    assert compiled("z = 3\n") is compiled("z = 3\n")
    error = compiled("def f(:\n")
    assert isinstance(error, SyntaxError) and error.__traceback__ is None


def test_code_is_compiled_without_evoforges_own_future_flags() -> None:
    # evoforge's modules use `from __future__ import annotations`; a child must not inherit it
    code = compiled("def f(x: undefined_name) -> None:\n    pass\n")
    namespace: dict = {}
    with pytest.raises(NameError):
        exec(code, namespace)  # noqa: S102 - evaluated annotations, as the evaluator will see
