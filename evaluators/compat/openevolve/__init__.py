"""Stand-in for the parts of the `openevolve` package that OpenEvolve evaluators import.

OpenEvolve example evaluators do `from openevolve.evaluation_result import EvaluationResult`;
this folder is put at the END of sys.path inside the sandbox, so such evaluators run unchanged
without OpenEvolve installed (a real installation, earlier on the path, wins).
"""
