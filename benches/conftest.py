"""Benches guard runtime with ratios against a baseline timed in the same run."""
