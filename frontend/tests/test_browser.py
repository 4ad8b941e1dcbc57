"""Drawing in a real Chromium (Debian's) driven by Playwright, against a real backend and
a real `streamlit run`. Screenshots of each state go to artifacts/frontend/."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect, sync_playwright

from mnist_testkit.browser import CHROMIUM, CHROMIUM_ARGS
from mnist_testkit.processes import start_backend, start_frontend
from tests.servers import FRONTEND_DIR

AXE = FRONTEND_DIR / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory) -> Iterator[dict]:
    """Its own backend (the test stops it), taking corrections into SQLite, and the page pointing at it."""
    logs = tmp_path_factory.mktemp("browser-logs")
    database = logs / "feedback.sqlite3"
    backend = start_backend(model_dir, logs, FEEDBACK_DATABASE_URL=f"sqlite:///{database}")
    frontend = start_frontend(backend.url, logs)
    yield {"backend": backend, "frontend_url": frontend.url, "feedback_database": database}
    frontend.stop()
    backend.stop()


@pytest.fixture(scope="module")
def page(stack) -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/install-system-deps.sh (Debian package 'chromium')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(stack["frontend_url"], wait_until="networkidle")
        yield page
        browser.close()


def canvas_box(page: Page) -> dict:
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=30_000)
    return canvas.bounding_box()


def draw(page: Page, points: list[tuple[float, float]]) -> None:
    """One pen stroke through ``points`` given as fractions of the canvas (0..1)."""
    box = canvas_box(page)
    absolute = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*absolute[0])
    page.mouse.down()
    for point in absolute[1:]:
        page.mouse.move(*point, steps=2)
    page.mouse.up()


def wait_for_full_result(page: Page) -> None:
    """The digit, the probability chart and the 28x28 input are all on screen."""
    expect(page.locator("figure img")).to_be_visible(timeout=30_000)
    expect(
        page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first
    ).to_be_visible(timeout=30_000)


def wait_until_drawn(page: Page) -> None:
    """The page's script has finished: no element left from the previous answer (whose buttons
    stay clickable, greyed, while the next answer is drawn; the page ignores a click there)."""
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=30_000)


def clear_canvas(page: Page) -> None:
    page.get_by_role("button", name="Clear the canvas").click()
    expect(page.get_by_test_id("predicted-digit")).to_have_count(0, timeout=30_000)


def test_drawing_a_one_then_a_zero(page, artifacts):
    expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=30_000)
    draw(page, [(0.5, 0.15 + 0.7 * i / 20) for i in range(21)])  # a vertical stroke
    expect(page.get_by_test_id("predicted-digit")).to_have_text("1", timeout=30_000)
    wait_for_full_result(page)
    page.screenshot(path=artifacts / "drew-1.png", full_page=True)

    clear_canvas(page)
    loop = [(0.5 + 0.22 * math.sin(t), 0.5 - 0.33 * math.cos(t)) for t in (2 * math.pi * i / 40 for i in range(42))]
    draw(page, loop)  # a closed oval
    expect(page.get_by_test_id("predicted-digit")).to_have_text("0", timeout=30_000)
    wait_for_full_result(page)
    page.screenshot(path=artifacts / "drew-0.png", full_page=True)


def test_correcting_an_answer_reaches_the_store_the_metric_and_the_review_queue(page, stack, artifacts):
    clear_canvas(page)
    draw(page, [(0.5, 0.15), (0.5, 0.85)])  # a vertical stroke: the model reads a 1
    expect(page.get_by_test_id("predicted-digit")).to_have_text("1", timeout=30_000)
    expect(page.get_by_text("keeps the 28×28 image the model saw")).to_be_visible()
    wait_until_drawn(page)
    # Keyboard only: focus the "7" of "Wrong — it was" (a radio group), press Enter.
    seven = page.get_by_role("radiogroup", name="Wrong — it was").get_by_role("radio", name="7", exact=True)
    seven.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Thank you! Saved: it was a 7, not a 1.")).to_be_visible(timeout=30_000)
    page.screenshot(path=artifacts / "feedback-given.png", full_page=True)

    with sqlite3.connect(stack["feedback_database"]) as database:
        rows = database.execute(
            "SELECT label, predicted_digit, review, length(input_pixels) FROM corrections"
        ).fetchall()
        columns = [row[1] for row in database.execute("PRAGMA table_info(corrections)")]
    assert rows == [(7, 1, "pending", 784)]
    assert not [name for name in columns if "ip" in name.split("_") or "address" in name]
    backend = stack["backend"].url
    metrics = httpx.get(f"{backend}/metrics").text
    assert re.search(r'mnist_feedback_total\{model_version="[^"]+",verdict="wrong"\} 1\.0', metrics), metrics[-2000:]
    # The review queue (dev: admin calls from this machine need no admin key).
    (group,) = httpx.get(f"{backend}/api/v1/admin/feedback").json()["groups"]
    assert (group["label"], group["predicted_digit"], group["count"]) == (7, 1, 1)

    # Changing one's mind replaces the correction.
    page.get_by_role("button", name="Right", exact=True).click()
    expect(page.get_by_text("Saved: it was right (your earlier answer was replaced).")).to_be_visible(timeout=30_000)
    with sqlite3.connect(stack["feedback_database"]) as database:
        assert database.execute("SELECT label FROM corrections").fetchall() == [(1,)]


def test_page_has_no_serious_accessibility_violations(page, artifacts):
    assert AXE.is_file(), f"{AXE} is missing: run `npm ci` in frontend/ (make install does)"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    report = [f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:5]}" for v in serious]
    (artifacts / "axe-violations.txt").write_text("\n".join(report) or "none\n")
    assert not report, "\n".join(report)


def test_uploads_are_refused_when_huge_and_shrunk_otherwise(page, tmp_path, artifacts):
    uploader = page.locator("input[type=file]")
    huge = tmp_path / "huge.png"  # 30 megapixels in a few KB
    Image.new("L", (6000, 5000)).save(huge)
    uploader.set_input_files(str(huge))
    expect(page.get_by_text("6000×5000 pixels; the page accepts at most 24 megapixels")).to_be_visible(timeout=30_000)
    page.screenshot(path=artifacts / "upload-refused.png", full_page=True)

    photo = tmp_path / "seven.png"  # 12 megapixels: shrunk by the page, then read by the backend
    image = Image.new("L", (4000, 3000), 230)
    ImageDraw.Draw(image).line([(1500, 900), (2500, 900), (1800, 2300)], fill=20, width=160)
    image.save(photo)
    uploader.set_input_files(str(photo))
    expect(page.get_by_test_id("predicted-digit")).to_have_text("7", timeout=30_000)
    # An upload is corrected like a drawing.
    wait_until_drawn(page)
    page.get_by_role("button", name="Right", exact=True).click()
    expect(page.get_by_text("Thank you! Saved: it was right.")).to_be_visible(timeout=30_000)


def test_stopping_the_backend_shows_unreachable(page, stack, artifacts):
    stack["backend"].stop()
    page.reload(wait_until="networkidle")
    expect(page.get_by_text("is unreachable. Is it running?").first).to_be_visible(timeout=30_000)
    page.screenshot(path=artifacts / "backend-unreachable.png", full_page=True)
