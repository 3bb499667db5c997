"""Running a model on an environment for N steps: `dbgym run` (and, later, a tracked
simulation of the project store)."""
