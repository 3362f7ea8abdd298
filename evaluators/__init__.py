"""What runs where candidate programs run: the job contract, the evaluation harness and the ways a
job is run (fresh, two-phase, pre-forked), the sandbox (isolation/), and helpers problem authors
import (toolkit/). Never imports service/. The service calls evaluators.evaluate.evaluate_job and
reads evaluators.jobs; modules run inside the sandbox (harness, phases, forkserver) import no
host-side module (evaluate, fresh, two_phase, prefork).

`from evaluators import rl` / `es` / `es_jax`, as problem folders written before the toolkit/
package do, still works: those names resolve to evaluators.toolkit on first use.
"""

import importlib
from types import ModuleType

_TOOLKIT = ("es", "es_jax", "rl")


def __getattr__(name: str) -> ModuleType:
    """Returns evaluators.toolkit.NAME for the toolkit modules' old names."""
    if name in _TOOLKIT:
        return importlib.import_module(f"evaluators.toolkit.{name}")
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
