"""The review app in real Chromium (Debian's /usr/bin/chromium, driven by Playwright), against the real server."""

import http.client
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from review_helpers import make_review_dir
from review_server import ReviewServer

pytest.importorskip("starlette", reason="the review app needs passkit[review]")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (passkit[dev])")
expect = sync_api.expect

CHROMIUM = os.environ.get("PASSKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PASSKIT_CHROMIUM) to run the browser test",
    ),
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def raw_get(server, path, token=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", path, skip_accept_encoding=True)  # the path goes out exactly as written
    if token:
        connection.putheader("X-Passkit-Token", token)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def progress(page):
    return page.inner_text("#progress")


def current_position(page):
    return int(page.get_attribute(".tile.current", "data-pos"))


def decisions_in(folder):
    db = sqlite3.connect(f"file:{folder / 'review' / 'decisions.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT key, label, reason, reviewer, queue FROM decisions ORDER BY seq").fetchall()
    db.close()
    return rows


def test_keyboard_review_survives_a_restart_and_guards_hold(tmp_path, browser):
    folder = tmp_path / "filtered"
    make_review_dir(folder, kept=20, rejected=3, size=(160, 120), pii=True)
    args = ("--reviewer", "tester", "--page-size", "8")
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    with ReviewServer(folder, *args) as server:
        page.goto(server.url)
        assert page.url == server.base + "/"  # the token moved into a cookie
        page.wait_for_selector(".tile.current")
        assert page.locator(".tile").count() == 8
        assert progress(page).startswith("0 / 20 decided")
        assert page.locator(".tile").first.get_attribute("data-key") == "img-00001"  # highest score first
        assert page.locator(".tile[data-key='img-00003'] svg rect.person").count() == 1  # detector box drawn
        expect(page.locator(".tile img").first).to_have_js_property("naturalWidth", 160)  # the thumbnail loaded

        for key, decided in (("1", 1), ("0", 2), ("2", 3), ("0", 4), ("ArrowRight", 4), ("0", 5), ("u", 4)):
            page.keyboard.press(key)
            expect(page.locator("#progress")).to_have_text(re.compile(rf"^{decided} / 20 decided"))
        assert progress(page) == "4 / 20 decided · 1 person · 1 other · 2 clean"
        tiles = page.locator(".tile")
        assert [tiles.nth(i).get_attribute("class").split()[1] for i in range(4)] == [
            "human",
            "clean",
            "other",
            "clean",
        ]
        assert "clean" not in tiles.nth(5).get_attribute("class")  # the undone one
        assert current_position(page) == 5

        page.keyboard.press("n")  # next page, keyboard only
        expect(page.locator(".tile.current")).to_have_attribute("data-pos", "8")
        page.keyboard.press("0")
        page.keyboard.press("z")  # zoom shows the full image
        page.wait_for_selector("#zoom:not([hidden]) img[src$='?full=1']")
        page.keyboard.press("Escape")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^5 / 20"))

        first_key = page.locator(".tile").first.get_attribute("data-key")
        rows = decisions_in(folder)
        assert [(label, reason) for _, label, reason, _, _ in rows] == [
            ("problem", "review:human"),
            ("clean", ""),
            ("problem", "review:other"),
            ("clean", ""),
            ("clean", ""),
            ("undo", ""),
            ("clean", ""),
        ]
        assert {(reviewer, queue) for _, _, _, reviewer, queue in rows} == {("tester", "borderline")}
        assert rows[-1][0] == first_key

        # Security, against the running server.
        assert raw_get(server, "/") == 401
        assert raw_get(server, "/img/img-00001") == 401
        assert raw_get(server, "/img/img-00001", server.token) == 200
        assert raw_get(server, "/img/../../../etc/passwd", server.token) == 404
        assert raw_get(server, "/img/..%2F..%2F00000.tar", server.token) == 404
        assert raw_get(server, "/static/../../review/decisions.sqlite", server.token) == 404
        stranger = browser.new_context()
        response = stranger.new_page().goto(server.base + "/")
        assert response.status == 401
        stranger.close()

    # Restart: a new process, port and token; nothing is lost.
    with ReviewServer(folder, *args) as again:
        assert again.token != server.token
        page.goto(again.url)
        page.wait_for_selector(".tile.current")
        assert progress(page).startswith("5 / 20 decided · 1 person · 1 other · 3 clean")
        assert current_position(page) == 4  # the first undecided image
        classes = [page.locator(".tile").nth(i).get_attribute("class") for i in range(5)]
        assert ["human" in classes[0], "clean" in classes[1], "other" in classes[2], "clean" in classes[3]] == [
            True
        ] * 4
        page.keyboard.press("1")
        page.keyboard.press("c")  # every other undecided image of the page is clean, not the one just marked
        expect(page.locator("#progress")).to_have_text(re.compile(r"^9 / 20 decided · 2 person · 1 other · 6 clean"))
        page.keyboard.press("u")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^6 / 20"))
        page.keyboard.press("u")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^5 / 20"))
        expect(page.locator(".tile.current")).to_have_attribute("data-pos", "4")
        # Fast typing across a page boundary: a key pressed while the next page loads is never applied to an
        # image of the old page.
        page_keys = [page.locator(".tile").nth(i).get_attribute("data-key") for i in range(8)]
        before = len(decisions_in(folder))
        for _ in range(5):
            page.keyboard.press("0")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^9 / 20"))
        expect(page.locator(".tile.current")).to_have_attribute("data-pos", re.compile("^(8|9)$"))
        page.wait_for_timeout(300)
        typed = [key for key, *_ in decisions_in(folder)[before:]]
        assert typed[:4] == page_keys[4:8]
        assert all(key not in page_keys for key in typed[4:])
        # A change of mind, undone, restores the earlier decision.
        page.keyboard.press("Home")
        expect(page.locator(".tile.current")).to_have_attribute("data-pos", "0")
        page.keyboard.press("0")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^9 / 20 decided · 0 person"))
        page.keyboard.press("u")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^9 / 20 decided · 1 person"))
        assert decisions_in(folder)[-1][1:3] == ("problem", "review:human")
    context.close()
    assert not errors


def test_a_thousand_images_by_keyboard_alone(tmp_path, browser):
    folder = tmp_path / "filtered"
    make_review_dir(folder, kept=1000, rejected=0, shards=4, size=(64, 48))
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    with ReviewServer(folder, "--reviewer", "kb", "--queue", "all") as server:
        page.goto(server.url)
        page.wait_for_selector(".tile.current")
        for index in range(25):  # 25 pages of 40: mark the first image, the rest of the page clean, next page
            page.keyboard.press("1" if index % 5 == 0 else "0")
            page.keyboard.press("c")
            expect(page.locator("#progress")).to_have_text(re.compile(rf"^{(index + 1) * 40:,} / 1,000 decided"))
            page.keyboard.press("n")
            if index < 24:
                expect(page.locator(".tile.current")).to_have_attribute("data-pos", str((index + 1) * 40))
        assert page.inner_text("#progress") == "1,000 / 1,000 decided · 5 person · 0 other · 995 clean"
    page.close()
    rows = decisions_in(folder)
    assert len(rows) == 1000 and len({key for key, *_ in rows}) == 1000
    assert sorted(key for key, label, *_ in rows if label == "problem") == [f"img-{i:05d}" for i in range(0, 1000, 200)]
