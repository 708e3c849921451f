"""The worker's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

PROCESSED = Counter("worker_votes_processed", "Valid vote messages written to PostgreSQL")
DEAD_LETTERED = Counter("worker_votes_dead_lettered", "Malformed messages moved to votes:dead", ["reason"])
RECLAIMED = Counter("worker_votes_reclaimed", "Messages moved back from a dead worker's batch")
BATCH_SIZE = Histogram(
    "worker_batch_size", "Messages per batch", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
)
QUEUE_DEPTH = Gauge("worker_queue_depth", "Messages waiting in the Redis list votes")
LAG = Histogram(
    "worker_vote_lag_seconds", "Per batch: from its oldest vote's enqueue to its commit in PostgreSQL",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RETRIES = Counter("worker_retries", "Waits for an unreachable dependency", ["dependency"])
LAST_LOOP = Gauge("worker_last_loop_timestamp_seconds", "When the main loop last turned")
