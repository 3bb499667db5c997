"""`dbgym bench`: runtime comparisons."""
