"""A real Chromium: the result page moves when someone votes, without a reload."""

import shutil

import pytest

from devstack import stack

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
    options = {"OPTION_A": "Mountains", "OPTION_B": "Sea"}
    redis_env = stack.redis_env(redis_server.port)
    vote = launch(stack.vote(redis_env, extra=options))
    launch(stack.worker(redis_env, postgres_server.env))
    result = launch(stack.result(postgres_server.env, extra=options))

    viewer = browser.new_page()
    errors: list[str] = []
    viewer.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    viewer.goto(result.url)
    viewer.wait_for_function("document.getElementById('total').textContent === 'No votes yet'")
    loads = []
    viewer.on("load", lambda _: loads.append(1))

    voter = browser.new_context().new_page()
    voter.goto(vote.url)
    assert voter.title() == "Mountains or Sea?"
    voter.get_by_role("button", name="Sea").click()
    voter.wait_for_selector("text=Your vote for Sea is in.")

    viewer.wait_for_function("document.getElementById('total').textContent === '1 vote'", timeout=15_000)
    sea = viewer.locator('[data-option="b"]')
    assert sea.locator(".percent .value").text_content() == "100.0"
    assert sea.locator(".label").text_content() == "Sea"
    assert viewer.locator("#connection").is_hidden()
    width = viewer.evaluate("getComputedStyle(document.querySelector('.b .fill')).width")
    assert width != "0px"

    # Changing one's mind moves the bars, not the total.
    voter.get_by_role("button", name="Mountains").click()
    voter.wait_for_selector("text=Your vote for Mountains is in.")
    viewer.wait_for_function(
        "document.querySelector('[data-option=\"a\"] .percent .value').textContent === '100.0'", timeout=15_000)
    assert viewer.locator("#total").text_content() == "1 vote"
    assert loads == [], "the result page reloaded"
    assert errors == [], errors
