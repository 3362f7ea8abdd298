"""Where evaluations run: the Executor Protocol, the local pool, the Celery client and its tasks.

May import evaluators/, problems/, db/ and config; knows nothing of the loop."""
