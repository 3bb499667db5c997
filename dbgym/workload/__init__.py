"""Workloads: traces of statements from logs, SQL files or built-in benchmarks.

- workload.py: Workload (the Rust trace with sessions, templates, sampling)
- describe.py: what a source holds (`dbgym workload inspect`)
- cli.py, cli_options.py: `dbgym workload inspect|replay|state`
"""
