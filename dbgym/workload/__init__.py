"""Workloads (logs, SQL, benchmarks), database states and replay, over the Rust core."""
