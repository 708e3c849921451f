"""Run the voting app on one machine: embedded Redis and PostgreSQL, the three services."""
