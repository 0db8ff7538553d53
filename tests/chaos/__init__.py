"""The chaos harness: real worker processes under injected faults, then an audit of the result.

`python -m tests.chaos` (or `make chaos`) runs it on SQLite and PostgreSQL; a shorter form runs
in the test suite (tests/integration/test_chaos.py).
"""
