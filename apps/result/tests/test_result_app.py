"""The result app through Quart's test client, against a real PostgreSQL."""

import asyncio
import json
import re

import pytest

from result.app import create_app
from result.settings import Settings
from voting_contract.ballot import Ballot
from voting_contract.settings import PostgresSettings


def settings_for(env: dict[str, str], *labels: str) -> Settings:
    return Settings(
        postgres=PostgresSettings.from_env(env), ballot=Ballot.of(*(labels or ("Cats", "Dogs"))),
        host="127.0.0.1", port=8080, recheck_seconds=30,
    )


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def metric(client, name: str) -> float:
    text = await (await client.get("/metrics")).get_data(as_text=True)
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


async def db_queries(client) -> float:
    return await metric(client, "result_db_queries_total")


def test_results_page_json_and_websocket_follow_the_table(postgres_server, pg_conn):
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('v1', 'a'), ('v2', 'a'), ('v3', 'b')")
    app = create_app(settings_for(postgres_server.env, "Tea", "Coffee"))
    feed = app.extensions["tally_feed"]

    async def scenario() -> None:
        async with app.test_app():
            await until(lambda: feed.loaded)
            client = app.test_client()
            data = await (await client.get("/api/results")).get_json()
            assert [(o["label"], o["votes"], o["percent"]) for o in data["options"]] == [
                ("Tea", 2, 66.7), ("Coffee", 1, 33.3)]
            assert (data["total"], data["total_text"], data["stale"]) == (3, "3 votes", False)
            page = await (await client.get("/")).get_data(as_text=True)
            assert "Tea" in page and "Coffee" in page and "3 votes" in page
            async with client.websocket("/ws") as ws:
                assert (await ws.receive_json())["total"] == 3
                await asyncio.to_thread(pg_conn.execute, "UPDATE votes SET vote = 'b' WHERE id = 'v1'")
                update = await asyncio.wait_for(ws.receive_json(), 5)
                assert [o["votes"] for o in update["options"]] == [1, 2]

    asyncio.run(scenario())


def test_many_viewers_cost_one_read_per_change(postgres_server, pg_conn):
    app = create_app(settings_for(postgres_server.env))
    feed = app.extensions["tally_feed"]

    async def scenario() -> None:
        async with app.test_app():
            await until(lambda: feed.loaded)
            client = app.test_client()
            contexts = [client.websocket("/ws") for _ in range(50)]
            sockets = [await c.__aenter__() for c in contexts]
            for ws in sockets:
                await ws.receive_json()
            before = await db_queries(client)
            await asyncio.to_thread(pg_conn.execute, "INSERT INTO votes (id, vote) VALUES ('x', 'b')")
            updates = await asyncio.gather(*(asyncio.wait_for(ws.receive_json(), 5) for ws in sockets))
            assert all(u["total"] == 1 for u in updates)
            assert await db_queries(client) - before == 1
            for c in contexts:
                await c.__aexit__(None, None, None)

    asyncio.run(scenario())


def test_a_database_outage_keeps_the_last_tallies_and_stays_ready(own_postgres):
    """Readiness must not follow PostgreSQL: the page with the last tallies is what users should get."""
    import psycopg

    app = create_app(settings_for(own_postgres.env))
    feed = app.extensions["tally_feed"]

    async def scenario() -> None:
        async with app.test_app():
            await until(lambda: feed.loaded)
            with psycopg.connect(own_postgres.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO votes (id, vote) VALUES ('v1', 'a')")
            await until(lambda: feed.current["total"] == 1)
            client = app.test_client()
            assert await metric(client, "result_db_connected") == 1
            await asyncio.to_thread(own_postgres.stop)
            await until(lambda: not feed.connected)
            data = await (await client.get("/api/results")).get_json()
            assert (data["total"], data["stale"]) == (1, True)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
            page = await client.get("/")
            text = await page.get_data(as_text=True)
            assert page.status_code == 200 and "1 vote" in text and "Reconnecting" in text
            assert await metric(client, "result_db_connected") == 0
            await asyncio.to_thread(own_postgres.start)
            with psycopg.connect(own_postgres.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO votes (id, vote) VALUES ('v2', 'b')")
            await until(lambda: feed.connected and feed.current["total"] == 2, timeout=20)
            assert (await client.get("/readyz")).status_code == 200
            assert await metric(client, "result_db_connected") == 1

    asyncio.run(scenario())


def test_before_the_first_read_the_api_says_it_has_nothing_yet(free_settings):
    app = create_app(free_settings)

    async def scenario() -> None:
        response = await app.test_client().get("/api/results")
        assert response.status_code == 503
        assert (await response.get_json())["loaded"] is False

    asyncio.run(scenario())


def test_without_postgres_from_the_start_it_is_ready_and_says_connecting(free_settings):
    app = create_app(free_settings)

    async def scenario() -> None:
        async with app.test_app():
            client = app.test_client()
            await asyncio.sleep(0.3)  # the reader has tried and failed by now
            assert (await client.get("/readyz")).status_code == 200
            page = await client.get("/")
            assert page.status_code == 200 and "Connecting" in await page.get_data(as_text=True)
            assert await metric(client, "result_db_connected") == 0

    asyncio.run(scenario())


def test_once_shutting_down_it_is_not_ready(free_settings):
    app = create_app(free_settings)

    async def scenario() -> None:
        app.extensions["tally_feed"].close_viewers()
        assert (await app.test_client().get("/readyz")).status_code == 503

    asyncio.run(scenario())


@pytest.fixture
def free_settings():
    from devstack.servers import free_port

    return settings_for({"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(free_port()),
                         "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"})


def test_a_three_option_ballot_is_served_in_order(postgres_server, pg_conn):
    pg_conn.execute("INSERT INTO votes (id, vote) VALUES ('v1', 'c'), ('v2', 'a'), ('v3', 'c')")
    app = create_app(settings_for(postgres_server.env, "Tea", "Coffee", "Water"))
    feed = app.extensions["tally_feed"]

    async def scenario() -> None:
        async with app.test_app():
            await until(lambda: feed.loaded)
            client = app.test_client()
            data = await (await client.get("/api/results")).get_json()
            assert [(o["id"], o["label"], o["votes"], o["percent"]) for o in data["options"]] == [
                ("a", "Tea", 1, 33.3), ("b", "Coffee", 0, 0.0), ("c", "Water", 2, 66.7)]
            page = await (await client.get("/")).get_data(as_text=True)
            assert page.count('class="option ') == 3 and 'data-option="c"' in page
            assert "<title>Tea vs Coffee vs Water: results</title>" in page

    asyncio.run(scenario())


def test_a_viewer_is_removed_however_it_leaves(free_settings):
    """The feed's viewer() block: a viewer gone mid-send, or cancelled mid-send, stops being counted."""
    from result.feed import VIEWERS

    app = create_app(free_settings)
    feed = app.extensions["tally_feed"]

    async def scenario() -> None:
        sending = asyncio.Event()
        sent: asyncio.Queue = asyncio.Queue()

        async def send_fails(message: dict) -> None:
            await sent.put(message)
            raise ConnectionResetError("the browser went away while we sent it the tallies")

        async def send_never_returns(message: dict) -> None:
            sending.set()
            await asyncio.sleep(3600)  # a send to a peer that never reads

        async def leaves_mid_send() -> None:
            with feed.viewer(send_fails):
                await sent.get()
                raise ConnectionResetError("the server saw the disconnect")

        async def cancelled_mid_send() -> None:
            with feed.viewer(send_never_returns):
                await asyncio.sleep(3600)

        before = VIEWERS._value.get()
        gone = asyncio.create_task(leaves_mid_send())
        stuck = asyncio.create_task(cancelled_mid_send())
        await asyncio.sleep(0)
        assert feed.viewers == 2 and VIEWERS._value.get() == before + 2
        feed._publish({"a": 1})
        await sending.wait()
        stuck.cancel()
        results = await asyncio.gather(gone, stuck, return_exceptions=True)
        assert isinstance(results[0], ConnectionResetError) and isinstance(results[1], asyncio.CancelledError)
        assert feed.viewers == 0 and VIEWERS._value.get() == before

    asyncio.run(scenario())


def test_a_browser_that_drops_its_connection_mid_push_is_no_longer_a_viewer(postgres_server, pg_conn, launch):
    """A real server: the viewer's TCP connection is cut with no close frame, then tallies are pushed."""
    import httpx
    import websockets

    from devstack import stack

    result = launch(stack.result(postgres_server.env))

    def viewers() -> float:
        text = httpx.get(f"{result.url}/metrics").text
        return float(re.search(r"^result_websocket_viewers (\S+)$", text, re.M).group(1))

    async def scenario() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{result.port}/ws") as staying:
            dropping = await websockets.connect(f"ws://127.0.0.1:{result.port}/ws")
            await staying.recv()
            await dropping.recv()
            assert await asyncio.to_thread(viewers) == 2
            dropping.transport.abort()  # a phone losing its network: no close handshake
            for i in range(3):
                await asyncio.to_thread(pg_conn.execute, f"INSERT INTO votes (id, vote) VALUES ('drop{i}', 'a')")
            async with asyncio.timeout(10):
                while json.loads(await staying.recv())["total"] < 3:
                    pass
                while await asyncio.to_thread(viewers) != 1:
                    await asyncio.sleep(0.05)

    asyncio.run(scenario())


def test_the_shared_palette_is_served(free_settings):
    app = create_app(free_settings)

    async def scenario() -> None:
        response = await app.test_client().get("/ballot.css")
        assert response.status_code == 200 and response.mimetype == "text/css"
        assert ".a { --option: var(--a); }" in await response.get_data(as_text=True)

    asyncio.run(scenario())
