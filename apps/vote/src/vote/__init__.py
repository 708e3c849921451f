"""The ballot: a Flask app that queues each vote in Redis."""
