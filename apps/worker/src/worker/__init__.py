"""Moves votes from the Redis list `votes` into PostgreSQL."""
