"""The whole flow across real processes: vote → Redis → worker → PostgreSQL → result."""

import asyncio
import json
import re
import signal
import time

import httpx
import pytest
import websockets

from devstack import stack
from voting_contract.wire import QUEUE


@pytest.fixture
def app_stack(redis_server, postgres_server, redis_client, pg_conn, launch):
    redis_env = stack.redis_env(redis_server.port)
    vote = launch(stack.vote(redis_env, extra={"OPTION_A": "Tabs", "OPTION_B": "Spaces"}))
    worker = launch(stack.worker(redis_env, postgres_server.env))
    result = launch(stack.result(postgres_server.env, extra={"OPTION_A": "Tabs", "OPTION_B": "Spaces"}))
    return vote, worker, result


async def next_total(ws, total: int, timeout: float = 15.0) -> dict:
    """The first pushed tallies whose total is `total`."""
    async with asyncio.timeout(timeout):
        while True:
            snapshot = json.loads(await ws.recv())
            if snapshot["total"] == total:
                return snapshot


def test_votes_reach_the_live_results(app_stack, pg_conn):
    vote, _, result = app_stack

    async def scenario() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as ws:
            first = json.loads(await ws.recv())
            assert (first["total"], first["total_text"]) == (0, "No votes yet")
            assert [o["label"] for o in first["options"]] == ["Tabs", "Spaces"]
            voters = [httpx.Client(base_url=vote.url) for _ in range(3)]
            for client, choice in zip(voters, "aab"):
                assert client.post("/", data={"vote": choice}).status_code == 200
            snapshot = await next_total(ws, 3)
            assert [o["votes"] for o in snapshot["options"]] == [2, 1]
            # One voter changes their mind: still three votes, one moved.
            assert voters[0].post("/", data={"vote": "b"}).status_code == 200
            snapshot = await next_total_with(ws, lambda s: [o["votes"] for o in s["options"]] == [1, 2])
            assert snapshot["total_text"] == "3 votes"
            for client in voters:
                client.close()

    asyncio.run(scenario())
    assert httpx.get(f"{result.url}/api/results").json()["total"] == 3
    assert pg_conn.execute("SELECT count(*) FROM votes").fetchone()[0] == 3


async def next_total_with(ws, predicate, timeout: float = 15.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            snapshot = json.loads(await ws.recv())
            if predicate(snapshot):
                return snapshot


def eventually(read, wanted, timeout: float = 15.0):
    """Poll `read()` until it returns `wanted`; its last value either way."""
    deadline = time.monotonic() + timeout
    while (value := read()) != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_each_service_exposes_probes_and_metrics(app_stack, redis_client):
    """The probes answer, and each metric moves by what was done: one vote, one bad message, one viewer."""
    vote, worker, result = app_stack
    for service in app_stack:
        assert httpx.get(service.url + "/healthz").status_code == 200
        assert httpx.get(service.url + "/readyz").status_code == 200
    assert httpx.post(vote.url + "/", data={"vote": "a"}).status_code == 200
    redis_client.rpush(QUEUE, b"not json")
    assert re.search(r'^vote_votes_cast_total\{option="a"\} 1\.0$', httpx.get(vote.url + "/metrics").text, re.M)
    assert stack.metric(vote.url, "vote_votes_cast_total") == 1
    assert eventually(lambda: stack.metric(worker.url, "worker_votes_processed_total"), 1) == 1
    assert eventually(lambda: stack.metric(worker.url, "worker_votes_dead_lettered_total"), 1) == 1
    assert stack.metric(worker.url, "worker_batch_size_count") >= 1
    assert stack.metric(worker.url, "worker_vote_lag_seconds_count") >= 1
    assert eventually(lambda: stack.metric(worker.url, "worker_queue_depth"), 0) == 0

    async def one_viewer() -> tuple[float, float]:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as ws:
            await next_total(ws, 1)
            return (await asyncio.to_thread(eventually, lambda: stack.metric(result.url, "result_websocket_viewers"), 1),
                    stack.metric(result.url, "result_db_queries_total"))

    viewers, queries = asyncio.run(one_viewer())
    assert viewers == 1 and queries >= 1
    assert eventually(lambda: stack.metric(result.url, "result_websocket_viewers"), 0) == 0


def test_vote_metrics_add_up_across_gunicorn_workers(redis_server, redis_client, launch):
    vote = launch(stack.vote(stack.redis_env(redis_server.port), workers=3))
    with httpx.Client(base_url=vote.url) as client:
        for _ in range(30):
            assert client.post("/", data={"vote": "b"}).status_code == 200
        # Each scrape may land on any worker; each must report the sum over all of them.
        for _ in range(5):
            text = client.get("/metrics").text
            assert re.search(r'^vote_votes_cast_total\{option="b"\} 30\.0$', text, re.M), text[:2000]


def test_result_shuts_down_promptly_after_serving_websockets(postgres_server, pg_conn, launch):
    result = launch(stack.result(postgres_server.env))

    async def view() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as ws:
            await ws.recv()

    asyncio.run(view())
    # Exits by itself on SIGTERM (exit code 0), not by the SIGKILL that follows a hang.
    assert result.stop(timeout=10) == 0


def test_sigterm_closes_open_websockets_so_viewers_move_to_another_pod(postgres_server, pg_conn, launch):
    result = launch(stack.result(postgres_server.env))

    async def watch_through_sigterm() -> tuple[int | None, float]:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as ws:
            await ws.recv()
            result.proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(10):  # the drain timeout is 20 s: this is a close, not a cut
                    await ws.recv()
            return ws.close_code

    assert asyncio.run(watch_through_sigterm()) == 1000
    assert result.proc.wait(10) == 0


def test_websockets_are_not_compressed(postgres_server, pg_conn, launch):
    """Browsers offer permessage-deflate; a deflate context per viewer would cost ~100 KB each."""
    result = launch(stack.result(postgres_server.env))

    async def offer_deflate() -> str | None:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as ws:  # offers it by default
            assert json.loads(await ws.recv())["total_text"]
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert asyncio.run(offer_deflate()) is None
