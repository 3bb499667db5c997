"""Replaying a workload's trace against a server (the engine is Rust: rust/replay/).

- run.py: replay(), ReplayResult, ReplaySummary, LatencyStats
- cli.py: `dbgym workload replay`

(The package is `replayer`, not `replay`, so that `dbgym.replay` stays the function.)
"""
