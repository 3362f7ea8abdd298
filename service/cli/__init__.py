"""The `evoforge` command line: one module per command group, common options in common.py.

May import anything in service/ (it is the top, beside api/); nothing imports it."""
