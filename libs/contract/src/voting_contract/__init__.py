"""The wire contract shared by vote, worker and result, kept in one place."""
