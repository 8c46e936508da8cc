"""End to end: a real uvicorn on 127.0.0.1 driven by headless Chromium (Debian's ``chromium``
through Playwright): search, rate three movies, watch the recommendations appear and change,
open "more like this", then pick an existing user."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[dev]')")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
if CHROMIUM is None:
    pytest.skip("no chromium executable (apt-get install chromium)", allow_module_level=True)

import uvicorn  # noqa: E402
from serving import free_port  # noqa: E402

from recommender.serve import create_app  # noqa: E402


@pytest.fixture
def live_url(service):
    """The app on a real uvicorn server in a thread, on a free loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service=service), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow  # end to end: a real server and a real browser
def test_rate_three_movies_and_watch_the_list_change(live_url):
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_url)
        expect(page.locator("#status")).to_contain_text("400 movies")
        recs = page.locator("#rec-list li")
        expect(recs).to_have_count(0)

        lists, rated = [], []
        for query in ("movie 12", "movie 7", "movie 33"):
            page.fill("#search", query)
            first = page.locator("#suggestions li").first
            expect(first).to_contain_text(query, ignore_case=True)
            rated.append(first.inner_text())
            first.click()
            page.select_option("#stars", "5")
            page.click("#rate-btn")
            expect(page.locator("#my-ratings li")).to_have_count(len(rated))
            if lists:  # wait for the list to be redrawn with the new rating
                expect(page.locator("#rec-list")).not_to_have_text(lists[-1])
            expect(recs).to_have_count(10)
            text = page.locator("#rec-list").inner_text()
            assert not set(rated) & set(page.locator("#rec-list .title").all_inner_texts())
            assert "because you rated" in text and "predicted" in text
            lists.append(text)
        assert len(set(lists)) == 3
        assert page.locator("#who-line").inner_text().startswith("You are user 3")

        page.locator("#rec-list .more").first.click()
        expect(page.locator("#similar-list li")).to_have_count(8)

        page.fill("#user-id", "1")
        page.click("#user-form button[type=submit]")
        expect(page.locator("#who-line")).to_have_text("You are user 1.")
        expect(page.locator("#my-count")).to_contain_text("ratings")
        expect(page.locator("#rec-list")).not_to_have_text(lists[-1])
        assert not errors, errors
        browser.close()
