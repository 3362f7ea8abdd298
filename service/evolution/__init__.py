"""The evolutionary loop: engine, planner, prompts, archive, ledger (the one writer of run rows).

May import edits/, llm/, execution/, problems/, db/ and config; never rl/, runs, api/ or cli/."""
