"""The real drawing page and a real backend behind the real edge, in Debian's Chromium: the
page works under the edge's Content-Security-Policy, with no violation reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from mnist_testkit.browser import CHROMIUM, CHROMIUM_ARGS
from mnist_testkit.digits import load_digits
from mnist_testkit.models import trained_model_dir
from mnist_testkit.processes import start_backend, start_frontend
from tests.edge import Edge, start_edge


@pytest.fixture(scope="module")
def edge_with_the_page(tmp_path_factory) -> Iterator[Edge]:
    logs = tmp_path_factory.mktemp("page-logs")
    backend = start_backend(trained_model_dir(), logs)
    frontend = start_frontend(backend.url, logs)
    backend_port, frontend_port = (int(url.rsplit(":", 1)[1]) for url in (backend.url, frontend.url))
    edge = start_edge(tmp_path_factory.mktemp("edge"), [backend_port], backend_port, frontend_port)
    yield edge
    edge.stop()
    frontend.stop()
    backend.stop()


def test_the_page_works_under_the_content_security_policy(edge_with_the_page, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/install-system-deps.sh (Debian package 'chromium')")
    example = tmp_path / "seven.png"  # a real MNIST 7, enlarged like a photo of it, uploaded
    Image.fromarray(np.asarray(load_digits()[7], dtype=np.uint8)).resize((280, 280)).save(example)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        response = page.goto(edge_with_the_page.https + "/", wait_until="networkidle")
        assert response is not None
        policy = response.headers.get("content-security-policy", "")
        for directive in ("default-src 'self'", "frame-ancestors 'self'", "object-src 'none'"):
            assert directive in policy
        assert "'unsafe-eval'" not in policy and "script-src 'self' 'sha256-" in policy
        expect(page.get_by_text("Ready", exact=True)).to_be_visible(timeout=30_000)
        page.locator("input[type=file]").set_input_files(str(example))
        expect(page.get_by_test_id("predicted-digit")).to_have_text("7", timeout=30_000)
        expect(page.locator("figure img")).to_be_visible(timeout=30_000)  # a data: image, allowed
        chart = page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")
        expect(chart.first).to_be_visible(timeout=30_000)  # vega renders without eval
        page.locator("canvas").last.wait_for(timeout=30_000)  # the drawing component rendered
        browser.close()
    assert violations == [], violations
