"""A real Chromium: the result page moves when someone votes, without a reload; other sites cannot vote."""

import http.server
import shutil
import threading

import pytest

from devstack import stack
from voting_contract.wire import QUEUE, decode

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The machine has no network: keep Chromium from reaching out at start.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_result_page_follows_a_vote_live(browser, redis_server, postgres_server, redis_client, pg_conn, launch):
    ballot = {"BALLOT": "a=Mountains,b=Sea,c=Forest"}
    redis_env = stack.redis_env(redis_server.port)
    vote = launch(stack.vote(redis_env, extra=ballot))
    launch(stack.worker(redis_env, postgres_server.env, extra=ballot))
    result = launch(stack.result(postgres_server.env, extra=ballot))

    viewer = browser.new_page()
    errors: list[str] = []
    viewer.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    viewer.goto(result.url)
    viewer.wait_for_function("document.getElementById('total').textContent === 'No votes yet'")
    loads = []
    viewer.on("load", lambda _: loads.append(1))

    voter = browser.new_context().new_page()
    voter.goto(vote.url)
    assert voter.title() == "Mountains, Sea or Forest?"
    assert voter.get_by_role("button").all_text_contents() == ["Mountains", "Sea", "Forest"]
    voter.get_by_role("button", name="Sea").click()
    voter.wait_for_selector("text=Your vote for Sea is in.")

    viewer.wait_for_function("document.getElementById('total').textContent === '1 vote'", timeout=15_000)
    sea = viewer.locator('[data-option="b"]')
    assert sea.locator(".percent .value").text_content() == "100.0"
    assert sea.locator(".label").text_content() == "Sea"
    assert viewer.locator("#connection").is_hidden()
    width = viewer.evaluate("getComputedStyle(document.querySelector('.b .fill')).width")
    assert width != "0px"

    # Changing one's mind moves the bars, not the total; the third option counts like the others.
    voter.get_by_role("button", name="Forest").click()
    voter.wait_for_selector("text=Your vote for Forest is in.")
    viewer.wait_for_function(
        "document.querySelector('[data-option=\"c\"] .percent .value').textContent === '100.0'", timeout=15_000)
    assert viewer.locator("#total").text_content() == "1 vote"
    assert viewer.locator('[data-option="b"] .percent .value').text_content() == "0.0"
    assert loads == [], "the result page reloaded"
    assert errors == [], errors


@pytest.fixture
def other_site():
    """serve(html): a page on another origin (127.0.0.1, another port); returns its URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(html: str) -> str:
        body = html.encode()

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_form_on_another_site_cannot_vote_for_its_visitors(browser, redis_server, redis_client, launch,
                                                             other_site):
    vote = launch(stack.vote(stack.redis_env(redis_server.port), extra={"OPTION_A": "Mountains",
                                                                       "OPTION_B": "Sea"}))
    page = browser.new_context().new_page()
    page.goto(vote.url)
    page.get_by_role("button", name="Sea").click()
    page.wait_for_selector("text=Your vote for Sea is in.")
    assert [decode(m, ("a", "b")).vote for m in redis_client.lrange(QUEUE, 0, -1)] == ["b"]

    # A page elsewhere that posts to the ballot the moment it opens.
    hostile = other_site(f'<form method="post" action="{vote.url}/"><input name="vote" value="a"></form>'
                         "<script>document.forms[0].submit()</script>")
    with page.expect_response(lambda r: r.url.startswith(vote.url) and r.request.method == "POST") as answer:
        page.goto(hostile)
    assert answer.value.status == 403
    page.wait_for_selector("text=this vote came from another site")
    assert [decode(m, ("a", "b")).vote for m in redis_client.lrange(QUEUE, 0, -1)] == ["b"]

    # The voter's own ballot still works, and still shows their own choice.
    page.goto(vote.url)
    assert page.locator(".option.b.chosen").count() == 1
    page.get_by_role("button", name="Mountains").click()
    page.wait_for_selector("text=Your vote for Mountains is in.")
    assert [decode(m, ("a", "b")).vote for m in redis_client.lrange(QUEUE, 0, -1)] == ["b", "a"]


# The longest labels a phone must show whole; eight options fill the ballot.
PHONE = {"width": 390, "height": 844}
BALLOTS = {
    2: "a=Cats,b=Dogs",
    8: "a=Mountains,b=Sea,c=Forest,d=Desert,e=A very long label that has to wrap on a phone,f=Lakes,g=Rivers,h=Ice",
}


def layout_problems(page) -> list[str]:
    """What would make a phone user scroll sideways or miss a button."""
    problems = []
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        problems.append(f"{overflow}px of horizontal overflow")
    for button in page.locator("#ballot button").all():
        box = button.bounding_box()
        name = button.text_content()
        if not button.is_visible() or box is None:
            problems.append(f"{name!r} not visible")
        elif box["height"] < 44:
            problems.append(f"{name!r} is {box['height']:.0f}px tall, under 44px")
        elif box["x"] < 0 or box["x"] + box["width"] > PHONE["width"] or box["y"] + box["height"] > PHONE["height"]:
            problems.append(f"{name!r} is outside the first screen: {box}")
    return problems


@pytest.mark.parametrize("size", sorted(BALLOTS))
def test_a_phone_shows_every_option_of_a_ballot(browser, redis_server, postgres_server, redis_client, pg_conn,
                                                launch, tmp_path, size):
    ballot = {"BALLOT": BALLOTS[size]}
    vote = launch(stack.vote(stack.redis_env(redis_server.port), extra=ballot))
    result = launch(stack.result(postgres_server.env, extra=ballot))
    page = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True).new_page()

    page.goto(vote.url)
    assert page.locator("#ballot button").count() == size
    page.screenshot(path=tmp_path / f"vote-{size}-options.png", full_page=True)
    assert layout_problems(page) == []
    page.locator("#ballot button").last.click()
    page.wait_for_selector("text=is in.")
    assert layout_problems(page) == []

    page.goto(result.url)
    page.wait_for_function("document.getElementById('total').textContent === 'No votes yet'")
    assert page.locator(".options .option").count() == size
    page.screenshot(path=tmp_path / f"result-{size}-options.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    print(f"screenshots: {tmp_path}/vote-{size}-options.png {tmp_path}/result-{size}-options.png")


def test_the_layout_check_sees_a_cramped_ballot(browser, redis_server, launch):
    """layout_problems is fed a page with too-small and overflowing buttons, and names them."""
    vote = launch(stack.vote(stack.redis_env(redis_server.port), extra={"BALLOT": BALLOTS[8]}))
    page = browser.new_context(viewport=PHONE, bypass_csp=True).new_page()
    page.goto(vote.url)
    page.add_style_tag(content="#ballot .option { padding: 0 !important; font-size: 10px !important; min-height: 0; }"
                               " #ballot .option.h { width: 600px; }")
    problems = layout_problems(page)
    assert any("horizontal overflow" in p for p in problems), problems
    assert any("under 44px" in p for p in problems), problems
