"""Project folder: SQLite store of simulations, status history, API calls; training data."""
