"""What the benchmarks share; small modules with public names, imported one by one.

paths       the repository, benchmarks/out, problem folders, the evoforge command
processes   process groups stopped on timeout or SIGTERM
llm_server  the embedded model behind llama-cpp-python's OpenAI server; the [llm] settings
evoforge    run evoforge once (a CLI process or in-process), read the run back: its best-so-far
            curves (in the problem's direction), samples, timings, best code; strict re-scoring
curves      best-so-far curves from (position, score) points, pure
store       JSON results under benchmarks/out/, written atomically
stats       paired comparisons: bootstrap interval of the mean difference, sign test
timing      summaries of measured durations (standard library only: the peer side imports it)
plots       matplotlib with the Agg backend, or None when it is not installed
venvs       peer venvs, benchmarks/.venv-<peer>: created on first use, reused after
"""
