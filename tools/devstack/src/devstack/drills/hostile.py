"""Hostile-input drills: bad HTTP requests, bad queue messages, hostile values, misconfigured services."""

from __future__ import annotations

import collections
import json
import os
import random
import re
import string
import subprocess

import httpx
import psycopg
import redis

from voting_contract.ballot import NOT_ON_BALLOT
from voting_contract.wire import DEAD_LETTER, QUEUE, decode

from .. import stack
from .lab import WORKER_FAST, Lab, redis_env
from .row import Row, judge
from ..truth import BALLOT
from .traffic import drain, metric


HOSTILE = [
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'; DROP TABLE votes; --", "a' OR '1'='1",
    "$$; SELECT pg_sleep(10); $$", "\\x00", "%00", "../../etc/passwd", "{{7*7}}", "${jndi:ldap://x}", "🗳️",
    "\u202e", "a" * 300, "",
]


def random_text(rng: random.Random, n: int) -> str:
    alphabet = string.printable + "äé中🙂\u0000\u202e<>'\";&%$"
    return "".join(rng.choice(alphabet) for _ in range(n))


def hostile_request(rng: random.Random) -> dict:
    """A request someone might send the vote service on purpose: any method, body, cookie or header."""
    kind = rng.randrange(8)
    headers: dict[str, str] = {}
    cookies = {}
    if rng.random() < 0.6:
        cookies["voter_id"] = rng.choice([*HOSTILE, random_text(rng, rng.randrange(60)), "0" * 32, "A" * 32])
    if rng.random() < 0.3:
        cookies["vote"] = rng.choice([*HOSTILE, *BALLOT.ids, NOT_ON_BALLOT])
    if kind == 0:
        return {"method": "POST", "url": "/", "data": {"vote": rng.choice([*HOSTILE, *BALLOT.ids, "A", " a"])},
                "cookies": cookies}
    if kind == 1:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6000)))
        headers["Content-Type"] = rng.choice(["application/x-www-form-urlencoded", "multipart/form-data",
                                              "multipart/form-data; boundary=x", "application/json", "text/plain"])
        return {"method": "POST", "url": "/", "content": body, "headers": headers, "cookies": cookies}
    if kind == 2:
        fields = {random_text(rng, rng.randrange(1, 20)): random_text(rng, rng.randrange(50)) for _ in range(5)}
        fields["vote"] = rng.choice([*BALLOT.ids, random_text(rng, 3)])
        return {"method": "POST", "url": "/", "data": fields, "cookies": cookies}
    if kind == 3:
        return {"method": "POST", "url": "/", "files": {"vote": ("v.txt", b"a")}, "cookies": cookies}
    if kind == 4:
        headers["X-Big"] = "x" * rng.choice([100, 8000, 9000, 20000, 70000])
        return {"method": "POST", "url": "/", "data": {"vote": "a"}, "headers": headers, "cookies": cookies}
    if kind == 5:
        return {"method": rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"]), "url": "/",
                "cookies": cookies}
    if kind == 6:
        path = "/" + "".join(rng.choice(string.ascii_letters + "%./<>'\"") for _ in range(rng.randrange(1, 80)))
        return {"method": rng.choice(["GET", "POST"]), "url": path, "cookies": cookies}
    return {"method": "GET", "url": "/", "cookies": cookies,
            "headers": {"X-Forwarded-Proto": rng.choice(["https", "<script>", "gopher"])}}


def cross_site_headers(rng: random.Random, port: int) -> dict[str, str]:
    """What a browser sends when a page elsewhere posts a form to the ballot at 127.0.0.1:port."""
    other = rng.choice(["https://evil.example", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}",
                        f"http://localhost:{port}", "null"])
    if other != "null" and rng.random() < 0.3:
        return {"Referer": f"{other}/page.html"}  # an old browser: no Origin, only a Referer
    return {"Origin": other}


def cross_site_posts(url: str, port: int, client: redis.Redis, count: int, rng: random.Random) -> tuple[dict, int, int]:
    """Valid votes posted from other sites' pages: answers by status, how many said why, votes queued."""
    statuses: collections.Counter = collections.Counter()
    said_why = 0
    before = client.llen(QUEUE)
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(count):
            response = http.post("/", data={"vote": rng.choice(BALLOT.ids)}, headers=cross_site_headers(rng, port))
            statuses[response.status_code] += 1
            said_why += "came from another site" in response.text
    return dict(statuses), said_why, client.llen(QUEUE) - before


def bad_http_input(lab: Lab, *, requests: int = 2000, seed: int = 7) -> Row:
    """Hostile requests to the live vote service: always a clear answer below 500, nothing unexpected queued."""
    rng = random.Random(seed)
    rs = lab.redis()
    client = redis.Redis.from_url(rs.url)
    vote = lab.launch(stack.vote(redis_env(rs), workers=2))
    statuses: collections.Counter = collections.Counter()
    problems: list[str] = []
    reflected = unsendable = 0
    with httpx.Client(base_url=vote.url, timeout=10) as http:
        for _ in range(requests):
            spec = hostile_request(rng)
            cookies = spec.pop("cookies")
            http.cookies.clear()
            if cookies:
                raw = "; ".join(f"{k}={v}" for k, v in cookies.items())
                spec.setdefault("headers", {})["Cookie"] = raw.encode("utf-8", "surrogatepass")
            try:
                response = http.request(**spec)
            except httpx.LocalProtocolError:
                unsendable += 1  # httpx itself refuses (a newline or NUL in a header): never reaches the server
                continue
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[response.status_code] += 1
            text = response.text
            reflected += sum(1 for h in HOSTILE[:2] if h in text)
    cross = max(requests // 10, 20)
    cross_statuses, said_why, cross_queued = cross_site_posts(vote.url, vote.port, client, cross, rng)
    messages = [decode(m, BALLOT.ids) for m in client.lrange(QUEUE, 0, -1)]
    off_ballot = [m for m in messages if m.vote not in BALLOT or not re.fullmatch(r"[0-9a-f]{32}", m.voter_id)]
    alive = vote.running() and stack.http_status(vote.url + "/healthz") == 200
    log = vote.log_path.read_text(errors="replace") if vote.log_path else ""
    worker_restarts = len(re.findall(r"Booting worker", log)) - 2
    five = {s: n for s, n in statuses.items() if not isinstance(s, int) or s >= 500}
    if five:
        problems.append(f"answers that are not a clear 2xx-4xx: {five}")
    if off_ballot:
        problems.append(f"{len(off_ballot)} queued messages with an off-ballot vote or a foreign voter id")
    if reflected:
        problems.append(f"{reflected} pages reflected hostile text unescaped")
    if cross_statuses != {403: cross} or said_why != cross or cross_queued:
        problems.append(f"cross-site votes: answers {cross_statuses}, {said_why}/{cross} said why, "
                        f"{cross_queued} queued (want all 403, none queued)")
    if not alive or worker_restarts > 0:
        problems.append(f"vote service alive={alive}, gunicorn workers restarted {worker_restarts} times")
    client.close()
    return judge(
        f"bad HTTP input x{requests}",
        f"{requests} random hostile requests to POST / and friends (bytes, forms, multipart, cookies, 8-70 KB "
        f"headers, odd methods and paths), then {cross} valid votes posted from other sites' pages",
        f"statuses {dict(sorted(statuses.items(), key=str))} ({unsendable} unsendable); {len(messages)} votes "
        f"queued, {len(off_ballot)} off-ballot; {reflected} unescaped reflections; cross-site: "
        f"{cross_statuses.get(403, 0)}/{cross} refused 403, {cross_queued} queued",
        problems, {"cross_site": cross, "cross_site_statuses": {str(k): v for k, v in cross_statuses.items()},
                   "cross_site_queued": cross_queued, "statuses": {str(k): v for k, v in statuses.items()}, "unsendable": unsendable,
                   "queued": len(messages),
                   "off_ballot": len(off_ballot), "reflected": reflected},
    )


def hostile_message(rng: random.Random) -> bytes:
    """A queue message anyone with Redis access might push: any bytes, any JSON."""
    kind = rng.randrange(7)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 1200)))
    if kind == 1:
        return random_text(rng, rng.randrange(0, 200)).encode("utf-8", "surrogatepass")
    body: dict = {"voter_id": rng.choice([*HOSTILE, f"m{rng.randrange(10**6)}", None, 7, ["x"], {"a": 1}]),
                  "vote": rng.choice([*BALLOT.ids, NOT_ON_BALLOT, "", None, 1, ["a"], "A", "<script>"])}
    if kind == 2:
        body["seq"] = rng.choice([-1, 0, 2**63, 2**64, 1.5, "1", True, None, 10 ** rng.randrange(1, 30)])
    if kind == 3:
        # A well-formed vote with one hostile number, e.g. an integer too large for a float.
        body = {"voter_id": f"n{rng.randrange(10**6)}", "vote": rng.choice(BALLOT.ids)}
        field_ = rng.choice(["ts", "seq"])
        if rng.random() < 0.5:
            body[field_] = rng.choice([1, -1]) * 10 ** rng.randrange(300, 400)
        else:
            body[field_] = rng.choice([1e308, -1, 2**63, 0.5, "now", True, None, [], {}])
    if kind == 4:
        body = rng.choice([[], "x", 1, None, [body], {"nested": body}])
    if kind == 5:
        return b"[" * rng.randrange(1, 600) + b"]" * rng.randrange(0, 600)
    return json.dumps(body).encode()


def bad_queue_input(lab: Lab, *, messages: int = 2000, seed: int = 8) -> Row:
    """Hostile messages on the Redis list: each becomes a row or a dead letter; the worker never dies."""
    rng = random.Random(seed)
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra={**WORKER_FAST, "WORKER_ID": "bad-input"}))
    raw = [hostile_message(rng) for _ in range(messages)]
    # Interleave good votes, so a poison message cannot hide behind an idle worker.
    truth: dict[str, str] = {}
    batch = []
    for i, message in enumerate(raw):
        batch.append(message)
        voter, choice = f"good{i}", rng.choice(BALLOT.ids)
        batch.append(json.dumps({"voter_id": voter, "vote": choice}).encode())
        truth[voter] = choice
    client.rpush(QUEUE, *batch)
    problems = drain(client, 60, worker)
    dead = client.llen(DEAD_LETTER)
    reasons = collections.Counter(json.loads(m)["reason"] for m in client.lrange(DEAD_LETTER, 0, -1))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        rows = dict(conn.execute("SELECT id, vote FROM votes").fetchall())
        bad_rows = conn.execute("SELECT count(*) FROM votes WHERE vote <> ALL(%s)", (list(BALLOT.ids),)).fetchone()[0]
    good_lost = sum(1 for v, c in truth.items() if rows.get(v) != c)
    accounted = dead + int(metric(worker.url, "worker_votes_processed_total")) if worker.running() else dead
    if not worker.running():
        problems.append(f"the worker died (exit {worker.proc.returncode}); its log ends: "
                        f"{worker.log_path.read_text(errors='replace').strip().splitlines()[-1][:200]}")
    if bad_rows:
        problems.append(f"{bad_rows} rows not on the ballot")
    if good_lost:
        problems.append(f"{good_lost} good votes between the bad ones not counted")
    if worker.running() and accounted != len(batch):
        problems.append(f"{accounted} messages accounted for (rows + dead letters), {len(batch)} sent")
    client.close()
    return judge(
        f"bad queue messages x{messages}",
        f"{messages} random hostile messages (bytes, JSON of every shape, huge numbers) between {messages} good votes",
        f"{dead} dead letters {dict(reasons.most_common(6))}; {len(rows)} rows, {bad_rows} off the ballot; "
        f"{good_lost} good votes lost; worker alive: {'yes' if worker.running() else 'NO'}",
        problems, {"sent": len(batch), "dead_letters": dead, "reasons": dict(reasons), "rows": len(rows),
                   "bad_rows": bad_rows, "good_lost": good_lost, "worker_alive": worker.running()},
    )


def hostile_values(lab: Lab) -> Row:
    """HTML, script and SQL in labels, cookies and voter ids: escaped in pages, parameters in SQL."""
    rs, pg = lab.redis(), lab.postgres()
    client = redis.Redis.from_url(rs.url)
    labels = {"OPTION_A": "<script>alert('a')</script>", "OPTION_B": "\"><img src=x onerror=alert(1)>&amp;"}
    vote = lab.launch(stack.vote(redis_env(rs), extra=labels))
    worker = lab.launch(stack.worker(redis_env(rs), pg.env, extra=WORKER_FAST))
    result = lab.launch(stack.result(pg.env, extra=labels))
    problems: list[str] = []
    pages = {
        "vote GET /": httpx.get(vote.url + "/"),
        "vote POST / (bad choice)": httpx.post(vote.url + "/", data={"vote": "<script>x</script>"}),
        "vote 404": httpx.get(vote.url + "/<script>alert(1)</script>"),
        "result GET /": httpx.get(result.url + "/"),
    }
    for where, response in pages.items():
        for value in labels.values():
            if value in response.text:
                problems.append(f"{where}: label {value!r} appears unescaped")
        if "<script>alert" in response.text or "<script>x" in response.text:
            problems.append(f"{where}: a script tag from input appears in the page")
    escaped = all("&lt;script&gt;" in pages[p].text for p in ("vote GET /", "result GET /"))
    if not escaped:
        problems.append("the labels do not appear escaped on the ballot and the results")
    api = httpx.get(result.url + "/api/results").json()
    if [o["label"] for o in api["options"]] != list(labels.values()):
        problems.append(f"/api/results labels {[o['label'] for o in api['options']]} are not the configured text")
    # A hostile voter_id cookie is never used: the service gives that browser a fresh id.
    cookie_ids = ["'; DROP TABLE votes; --", "<script>alert(1)</script>", "x" * 5000]
    foreign = 0
    for value in cookie_ids:
        response = httpx.post(vote.url + "/", data={"vote": "a"}, cookies={"voter_id": value})
        fresh = re.search(r"voter_id=([0-9a-f]{32})", response.headers.get("set-cookie", ""))
        if response.status_code != 200 or not fresh or value in response.text:
            foreign += 1
    if foreign:
        problems.append(f"{foreign} hostile voter_id cookies were not replaced by a fresh id")
    # Voter ids with SQL and HTML straight onto the queue: stored verbatim, so only ever parameters.
    sql_ids = [h for h in HOSTILE if h and len(h) <= 255 and h.isprintable()]
    client.rpush(QUEUE, *[json.dumps({"voter_id": v, "vote": "b"}) for v in sql_ids])
    problems += drain(client, 30, worker)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM votes").fetchall()}
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    verbatim = sum(1 for v in sql_ids if v in stored)
    if verbatim != len(sql_ids):
        problems.append(f"only {verbatim} of {len(sql_ids)} hostile voter ids stored verbatim")
    if not {"votes", "vote_tallies"} <= tables:
        problems.append(f"tables now {sorted(tables)}")
    headers = {}
    for name, svc in (("vote", vote), ("result", result)):
        try:
            status = httpx.get(svc.url + "/", headers={"X-Huge": "h" * 70_000}).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        headers[name] = status
        if not isinstance(status, int) or not 400 <= status < 500:
            problems.append(f"{name}: a 70 KB header got {status}, not a 4xx")
        if stack.http_status(svc.url + "/healthz") != 200:
            problems.append(f"{name} is unhealthy after a huge header")
    client.close()
    return judge(
        "hostile values",
        "labels with <script>/onerror, hostile voter_id cookies, SQL/HTML voter ids on the queue, 70 KB headers",
        f"pages escaped: {'yes' if escaped else 'NO'}; {len(cookie_ids) - foreign}/{len(cookie_ids)} cookies "
        f"replaced; {verbatim}/{len(sql_ids)} SQL/HTML ids stored verbatim, tables intact; huge header -> {headers}",
        problems, {"cookies_replaced": len(cookie_ids) - foreign, "ids_verbatim": verbatim,
                   "ids_sent": len(sql_ids), "huge_header_status": headers},
    )


PG_SAMPLE = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": "1", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p",
             "POSTGRES_DB": "d"}
REDIS_SAMPLE = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"}
MISCONFIGURATIONS = [
    ("vote", {"REDIS_PORT": "sixty"}, "REDIS_PORT"),
    ("vote", {"REDIS_PORT": "70000"}, "REDIS_PORT"),
    ("vote", {"OPTION_B": "x" * 100}, "OPTION_B"),
    ("vote", {"HTTP_WORKERS": "0"}, "HTTP_WORKERS"),
    ("vote", {"PORT": "http"}, "PORT"),
    ("worker", {"POSTGRES_USER": None}, "POSTGRES_USER"),
    ("worker", {"POSTGRES_PASSWORD": ""}, "POSTGRES_PASSWORD"),
    ("worker", {"POSTGRES_PORT": "5432x"}, "POSTGRES_PORT"),
    ("worker", {"WORKER_BATCH_SIZE": "-5"}, "WORKER_BATCH_SIZE"),
    ("worker", {"METRICS_PORT": "nine"}, "METRICS_PORT"),
    ("worker", {"BALLOT": "a=Cats,a=Dogs"}, "BALLOT"),
    ("result", {"POSTGRES_DB": None}, "POSTGRES_DB"),
    ("result", {"RESULT_RECHECK_SECONDS": "soon"}, "RESULT_RECHECK_SECONDS"),
    ("result", {"OPTION_A": "tab\there"}, "OPTION_A"),
]


def misconfigured(lab: Lab, *, cases: list[tuple[str, dict, str]] = MISCONFIGURATIONS) -> Row:
    """Each service refuses to start on a missing or malformed variable, and names it."""
    problems = []
    passed = 0
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "REDIS_", "OPTION_", "BALLOT"))}
    for service, change, name in cases:
        builders = {"vote": lambda: stack.vote(REDIS_SAMPLE), "worker": lambda: stack.worker(REDIS_SAMPLE, PG_SAMPLE),
                    "result": lambda: stack.result(PG_SAMPLE)}
        svc = builders[service]()
        env = {**clean_env, **svc.env}
        for key, value in change.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        try:
            done = subprocess.run(svc.argv, env=env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"{service} {change}: still running after 60 s")
            continue
        if done.returncode != 0 and name in done.stderr and "Traceback" not in done.stderr:
            passed += 1
        else:
            problems.append(f"{service} {change}: exit {done.returncode}, stderr {done.stderr.strip()[-200:]!r}")
    return judge(
        "misconfigured services",
        f"{len(cases)} starts with a missing or malformed variable (vote, worker, result)",
        f"{passed}/{len(cases)} refused to start, naming the variable, without a traceback",
        problems, {"cases": len(cases), "refused_naming_variable": passed},
    )

