"""End to end: a real uvicorn on 127.0.0.1 driven by headless Chromium (Debian's ``chromium``
through Playwright), as a new visitor on a phone: browse the most rated movies and a genre,
rate one in place (no star preset), search and rate with the keyboard, rate a
recommendation in place, change and remove ratings, "more like this" without rated movies,
then open a dataset user (read-only, every rating listed, the panels of the previous user
gone) and a user that does not exist (a friendly message, over nothing).

Screenshots go to ``$SERVE_SCREENSHOTS`` when it names a folder (to look at them).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

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


def shoot(page, name: str) -> None:
    folder = os.environ.get("SERVE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.mark.slow  # end to end: a real server and a real browser
def test_a_visitor_browses_rates_in_place_changes_and_removes(live_url, fitted):
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live_url)
        expect(page.locator("#status")).to_contain_text("400 movies")

        # The first screen: the most rated movies to browse, stars with nothing chosen.
        browse = page.locator("#browse-list > li")
        expect(browse).to_have_count(12)
        assert page.locator("#browse-list input[type=radio]:checked").count() == 0
        expect(page.locator("#rec-list > li")).to_have_count(0)
        shoot(page, "1-first-screen")
        page.get_by_role("button", name="Drama", exact=True).click()
        expect(page.locator("#browse-title")).to_have_text("Most rated: Drama")
        expect(browse.first.locator(".meta").first).to_contain_text("Drama")

        # Rate the first card in place: a click on the fifth star saves 5/5 and makes a user.
        first = browse.first.locator(".title").inner_text()
        browse.first.locator("label[data-value='5']").click()
        expect(page.locator("#who-line")).to_have_text("You are user 301.")
        expect(page.locator("#key-box")).to_be_visible()
        assert len(page.locator("#key-text").inner_text()) >= 43
        page.click("#key-done")
        expect(page.locator("#rec-list > li")).to_have_count(10)
        expect(page.locator("#mine-count")).to_have_text("1 rating.")

        # Search, then rate with the keyboard only: arrows choose, Enter saves.
        page.fill("#search", "movie 7")
        expect(page.locator("#suggestions li").first).to_contain_text("movie 7",
                                                                      ignore_case=True)
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        found = page.locator("#browse-list > li")
        expect(found).to_have_count(1)
        searched = found.locator(".title").inner_text()
        page.keyboard.press("ArrowRight")  # focus is on the first half star: 0.5 -> 1
        for _ in range(7):
            page.keyboard.press("ArrowRight")
        expect(found.locator(".stars-value")).to_have_text("4.5 – Enter saves")
        page.keyboard.press("Enter")
        expect(page.locator("#mine-count")).to_have_text("2 ratings.")

        # Rate a recommendation in place; it leaves the list.
        before = page.locator("#rec-list").inner_text()
        recommended = page.locator("#rec-list > li").first
        rec_title = recommended.locator(".title").inner_text()
        recommended.locator("label[data-value='4']").click()
        expect(page.locator("#mine-count")).to_have_text("3 ratings.")
        expect(page.locator("#rec-list")).not_to_have_text(before)
        titles = page.locator("#rec-list .title").all_inner_texts()
        assert not {first, searched, rec_title} & set(titles)
        assert "because you rated" in page.locator("#rec-list").inner_text()
        shoot(page, "2-three-ratings")

        # Change one of "Your ratings", then remove another.
        mine = page.locator("#mine-list > li")
        expect(mine).to_have_count(3)
        row = mine.filter(has_text=searched)
        row.locator("label[data-value='2']").click()
        expect(row.locator(".stars-value")).to_have_text("2/5")
        mine.filter(has_text=first).get_by_role("button", name=f"Remove your rating of {first}"
                                                ).click()
        expect(mine).to_have_count(2)
        expect(page.locator("#notice")).to_contain_text("Removed your rating")

        # More like this leaves out what the user rated.
        page.locator("#rec-list .more").first.click()
        expect(page.locator("#similar-list > li")).to_have_count(8)
        similar = set(page.locator("#similar-list .title").all_inner_texts())
        assert not similar & {searched, rec_title}
        shoot(page, "3-more-like-this")

        # A dataset user: read-only, every rating (50 shown, the rest one click away), the
        # previous user's panels gone.
        page.click("#open-toggle")
        page.fill("#user-id", "1")
        page.click("#user-form button[type=submit]")
        expect(page.locator("#who-line")).to_contain_text("Looking at user 1")
        expect(page.locator("#similar")).to_be_hidden()
        count = int((fitted[0].ratings.userId == 1).sum())
        expect(page.locator("#mine-count")).to_have_text(f"{count} ratings.")
        shown = min(count, 50)
        expect(page.locator("#mine-list > li")).to_have_count(shown)
        if count > 50:
            page.click("#mine-more")
            expect(page.locator("#mine-list > li")).to_have_count(count)
        assert page.locator("#mine-list input:not([disabled])").count() == 0
        assert page.locator("#mine-list button").count() == 0

        # A user that does not exist: a message for people, in the page's flow.
        page.click("#open-toggle")
        page.fill("#user-id", "99999")
        page.click("#user-form button[type=submit]")
        notice = page.locator("#notice")
        expect(notice).to_have_text("There is no such user. Check the number, or start over.")
        assert page.evaluate("getComputedStyle(document.getElementById('notice')).position") \
            == "static"
        expect(page.locator("#who-line")).to_contain_text("Looking at user 1")
        shoot(page, "4-errors-and-dataset-user")
        assert not errors, errors
        browser.close()
