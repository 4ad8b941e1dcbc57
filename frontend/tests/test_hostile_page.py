"""A browser that lies: the canvas's export is whatever the visitor's own browser sends over the
page's websocket. A real Chromium whose canvas export is replaced by a hostile image draws one
stroke on a real `streamlit run`; the page's process is measured, not only what it shows."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from mnist_testkit.browser import CHROMIUM, CHROMIUM_ARGS
from mnist_testkit.processes import Process, reset_peak_rss, rss_bytes, start_backend, start_frontend

MB = 1024 * 1024


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# 24 megapixels of transparent RGBA: ~100 KB as a data URL, 96 MB decoded (and 4x that as floats).
HUGE_EXPORT = png_data_url(Image.new("RGBA", (6000, 4000)))


def oversized_export() -> str:
    """24 megapixels again, the first 1,300 rows noise, which does not compress: a ~40 MB frame,
    far over the page's 2 MB websocket message limit (Streamlit's default allows 200 MB)."""
    image = Image.new("RGBA", (6000, 4000))
    image.paste(Image.frombytes("RGBA", (6000, 1300), os.urandom(6000 * 1300 * 4)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def page_server(model_dir, tmp_path_factory) -> Iterator[Process]:
    logs = tmp_path_factory.mktemp("hostile-page-logs")
    backend = start_backend(model_dir, logs)
    frontend = start_frontend(backend.url, logs)
    yield frontend
    frontend.stop()
    backend.stop()


def open_page_with_export(page_server: Process, export: str) -> Iterator[Page]:
    """The page in a Chromium whose canvases all export ``export`` instead of their pixels."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/install-system-deps.sh (Debian package 'chromium')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.add_init_script(f"HTMLCanvasElement.prototype.toDataURL = () => {export!r};")
        page.goto(page_server.url, wait_until="networkidle")
        yield page
        browser.close()


def draw_a_stroke(page: Page) -> None:
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=30_000)
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=5)
    page.mouse.up()


def test_a_canvas_export_of_24_megapixels_is_refused_before_decoding(page_server, artifacts):
    for page in open_page_with_export(page_server, HUGE_EXPORT):
        expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=30_000)
        before = rss_bytes(page_server.pid)
        reset_peak_rss(page_server.pid)
        draw_a_stroke(page)
        expect(page.get_by_text("The drawing could not be read")).to_be_visible(timeout=30_000)
        page.screenshot(path=artifacts / "hostile-canvas-export.png", full_page=True)
        grown = rss_bytes(page_server.pid, "VmHWM") - before
        print(
            f"24 MP canvas export ({len(HUGE_EXPORT) // 1024} KB frame): the page's peak RSS grew {grown / MB:.1f} MB"
        )
        assert grown < 100 * MB
        expect(page.get_by_test_id("predicted-digit")).to_have_count(0)


def test_a_frame_over_the_message_limit_never_reaches_the_page(page_server):
    export = oversized_export()
    for page in open_page_with_export(page_server, export):
        expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=30_000)
        before = rss_bytes(page_server.pid)
        reset_peak_rss(page_server.pid)
        draw_a_stroke(page)
        page.wait_for_timeout(3000)  # long enough for a rerun that decodes it; nothing to wait on
        grown = rss_bytes(page_server.pid, "VmHWM") - before
        print(f"{len(export) / MB:.1f} MB frame: the page's peak RSS grew {grown / MB:.1f} MB")
        # Dropped by the server it costs nothing; accepted, about twice its size (86 MB here)
        # even when the page's own check refuses it.
        assert grown < 25 * MB
        assert len(export) > 2 * MB
        assert httpx.get(page_server.url + "/_stcore/health").status_code == 200  # the page serves on
        expect(page.get_by_test_id("predicted-digit")).to_have_count(0)
