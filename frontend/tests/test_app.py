"""The page's states under Streamlit's AppTest, against real HTTP servers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_testkit.processes import start_backend
from mnist_testkit.waiting import free_port
from tests.servers import APP_PATH


@pytest.fixture
def run_page(monkeypatch) -> Callable[..., AppTest]:
    def run(backend_url: str, example: str | None = None) -> AppTest:
        monkeypatch.setenv("BACKEND_URL", backend_url)
        monkeypatch.setenv("CONNECT_RETRIES", "0")
        monkeypatch.setenv("REQUEST_TIMEOUT_S", "2")
        st.cache_resource.clear()  # the client is cached per process; each test has its own backend
        page = AppTest.from_file(str(APP_PATH), default_timeout=30).run()
        if example is not None:
            page.selectbox(key="example_digit").set_value(example).run()
        assert not page.exception, page.exception
        return page

    return run


def texts(elements) -> str:
    return " ".join(str(element.value) for element in elements)


def test_ready_backend_shows_model_version_and_accuracy(run_page, backend_url, model_dir):
    page = run_page(backend_url)
    assert texts(page.sidebar.success) == "Ready"
    version = (model_dir / "CURRENT").read_text().strip()
    sidebar = texts(page.sidebar.markdown)
    assert version in sidebar and "Test accuracy" in sidebar
    assert "Draw a digit on the canvas" in texts(page.info)
    # The served version's model card, as the backend serves it, behind the sidebar's expander.
    [card_expander] = [e for e in page.sidebar.expander if e.label.startswith("Model card")]
    card = (model_dir / version / "MODEL_CARD.md").read_text()
    assert texts(card_expander.markdown) == card.strip()


def test_a_version_without_a_card_shows_no_card(run_page, scripted):
    scripted.ready_with_model()
    scripted.reply("/api/v1/model/card", 404, {"detail": "model version 20260101T000000Z-abcdef has no model card"})
    page = run_page(scripted.url)
    assert texts(page.sidebar.success) == "Ready"
    assert not [e for e in page.sidebar.expander if e.label.startswith("Model card")]


def test_example_digit_is_predicted_by_the_real_backend(run_page, backend_url):
    page = run_page(backend_url, example="7")
    shown = texts(page.markdown)
    assert "data-testid='predicted-digit'" in shown and ">7</p>" in shown
    assert "confidence" in shown
    assert len(page.get("vega_lite_chart")) == 1  # the ten probabilities
    assert "alt='The 28 by 28 pixel image the model saw, read as 7'" in shown


def test_unreachable_backend_says_so(run_page):
    url = f"http://127.0.0.1:{free_port()}"
    page = run_page(url)
    message = f"The backend at {url} is unreachable. Is it running?"
    assert message in texts(page.sidebar.error)
    assert message in texts(page.error)


def test_not_ready_backend_shows_the_reason(run_page, scripted):
    scripted.reply("/ready", 503, {"status": "not ready", "reason": "metadata.json is not valid JSON"})
    page = run_page(scripted.url)
    assert "Not ready" in texts(page.sidebar.warning)
    assert "metadata.json is not valid JSON" in texts(page.sidebar.warning)


@pytest.mark.parametrize(
    ("status", "body", "headers", "where", "message"),
    [
        (401, {"detail": "invalid API key"}, {}, "error", "The backend refused the API key"),
        (429, {"detail": "slow down"}, {"Retry-After": "9"}, "warning", "Too many requests: wait 9 s"),
        (503, {"detail": "model not ready: loading"}, {}, "warning", "The model is not ready"),
        (422, {"detail": "the image is empty: no digit was drawn"}, {}, "warning", "no digit was drawn"),
        (500, {"detail": "boom"}, {}, "error", "The backend failed (HTTP 500)"),
    ],
)
def test_prediction_errors_are_short_messages(run_page, scripted, status, body, headers, where, message):
    scripted.ready_with_model()
    scripted.reply("/api/v1/predict", status, body, headers)
    page = run_page(scripted.url, example="3")
    assert message in texts(getattr(page, where))
    assert "predicted-digit" not in texts(page.markdown)


def test_auth_failure_on_status_is_reported_in_the_sidebar(run_page, scripted):
    scripted.reply("/ready", 200, {"status": "ready", "model_version": "v"})
    scripted.reply("/api/v1/model/info", 401, {"detail": "missing API key"})
    page = run_page(scripted.url)
    assert "refused the API key" in texts(page.sidebar.error)


@pytest.fixture(scope="module")
def feedback_backend(model_dir, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A real backend that takes corrections into its own SQLite file."""
    logs = tmp_path_factory.mktemp("feedback-backend")
    database = logs / "feedback.sqlite3"
    backend = start_backend(model_dir, logs, FEEDBACK_DATABASE_URL=f"sqlite:///{database}")
    yield backend.url, database
    backend.stop()


def saved_corrections(database: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT predicted_digit, label FROM corrections ORDER BY predicted_digit").fetchall()


def test_a_click_on_a_replaced_answer_saves_nothing_and_asks_again(run_page, feedback_backend):
    url, database = feedback_backend
    page = run_page(url, example="1")
    one = page.session_state["prediction"]  # the "1" as the page holds it
    page.selectbox(key="example_digit").set_value("7").run()
    [seven] = [button for button in page.button if (button.key or "").startswith("right-")]

    # The page has meanwhile read another image (a click on the 7's button still on screen, greyed,
    # while the next answer is drawn): the click must not become a verdict on the 7.
    page.session_state["prediction"] = one
    seven.click().run()
    assert not page.exception, page.exception
    assert saved_corrections(database) == []
    assert "before your click arrived: nothing was saved" in texts(page.info)

    # The answer now on screen takes the click.
    [current] = [button for button in page.button if (button.key or "").startswith("right-")]
    assert current.key != seven.key
    current.click().run()
    assert "Thank you! Saved: it was right." in texts(page.success)
    assert saved_corrections(database) == [(7, 7)]
