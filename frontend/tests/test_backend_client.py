from __future__ import annotations

import time

import pytest

from mnist_backend.config import Settings
from mnist_frontend.backend_client import BackendClient, BackendError
from mnist_frontend.config import FrontendSettings
from mnist_frontend.drawing import example_digit_png
from mnist_testkit.kept_alive import KeptAliveBackend
from mnist_testkit.waiting import free_port, wait_until


def client_for(url: str, **settings: object) -> BackendClient:
    return BackendClient(FrontendSettings(backend_url=url, **settings))


def test_status_of_a_real_backend_is_ready_with_its_model(backend_url, model_dir):
    status = client_for(backend_url).status()
    assert status.state == "ready"
    assert status.model_info["version"] == (model_dir / "CURRENT").read_text().strip()


def test_the_model_card_is_fetched_once_per_version(backend_url, model_dir, scripted):
    version = (model_dir / "CURRENT").read_text().strip()
    client = client_for(backend_url)
    assert client.model_card(version) == (model_dir / version / "MODEL_CARD.md").read_text()

    scripted.reply("/api/v1/model/card", 200, b"# Model card: mnist-cnn A\n")
    client = client_for(scripted.url)
    assert client.model_card("A") == client.model_card("A") == "# Model card: mnist-cnn A\n"
    assert len(scripted.received(path="/api/v1/model/card")) == 1
    scripted.reply("/api/v1/model/card", 401, {"detail": "missing or invalid X-API-Key"})
    assert client.model_card("B") is None  # not cached: asked again on the next rerun
    assert client.model_card("B") is None
    assert len(scripted.received(path="/api/v1/model/card")) == 3


@pytest.mark.parametrize("digit", [0, 4, 9])
def test_real_backend_reads_real_example_digits(backend_url, digit):
    prediction = client_for(backend_url).predict_png(example_digit_png(digit))
    assert prediction.digit == digit
    assert len(prediction.input_image) == 28


def test_unreachable_backend_is_said_plainly_after_retrying(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    status = client_for(url, connect_retries=2).status()
    assert status.state == "unreachable"
    assert status.detail == f"The backend at {url} is unreachable. Is it running?"
    assert time.monotonic() - started >= 0.5  # the retries backed off before giving up


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind", "message"),
    [
        (401, {"detail": "invalid API key"}, {}, "auth", "refused the API key"),
        (429, {"detail": "rate limit"}, {"Retry-After": "7"}, "rate limited", "wait 7 s"),
        (503, {"detail": "model not ready: no model"}, {}, "not ready", "not ready"),
        (422, {"detail": "the image is empty: no digit was drawn"}, {}, "input", "the image is empty"),
        (500, {"detail": "boom"}, {}, "error", "failed (HTTP 500)"),
    ],
)
def test_error_replies_become_one_sentence(scripted, status, body, headers, kind, message):
    scripted.reply("/api/v1/predict", status, body, headers)
    with pytest.raises(BackendError) as error:
        client_for(scripted.url).predict_png(example_digit_png(1))
    assert error.value.kind == kind
    assert message in error.value.message


def test_slow_backend_times_out_with_a_message(scripted):
    scripted.reply("/api/v1/predict", 200, {}, delay_s=2)
    with pytest.raises(BackendError, match=r"did not answer within 0\.5 s"):
        client_for(scripted.url, request_timeout_s=0.5).predict_png(example_digit_png(1))


def test_not_ready_status_carries_the_reason(scripted):
    scripted.reply("/ready", 503, {"status": "not ready", "reason": "no model: models/CURRENT does not exist"})
    status = client_for(scripted.url).status()
    assert status.state == "not ready"
    assert "models/CURRENT does not exist" in status.detail


def test_api_key_is_sent_from_the_environment_or_a_file(scripted, tmp_path):
    scripted.ready_with_model()
    client_for(scripted.url, api_key="from-env").status()
    key_file = tmp_path / "key"
    key_file.write_text("# shared with the backend's API_KEYS_FILE: the first key is used\nfrom-file\nsecond-key\n")
    client_for(scripted.url, api_key_file=key_file).status()
    sent = [request.headers.get("x-api-key") for request in scripted.requests]
    assert "from-env" in sent and "from-file" in sent


def test_a_connection_idle_nearly_as_long_as_the_backend_keeps_it_is_not_reused():
    """The backend closes idle connections after its keep-alive timeout; a request sent on one it is
    closing at that instant gets no answer. So the page gives them up first, and opens a new one."""
    backend_idle_s = Settings.model_fields["keep_alive_timeout_s"].default
    backend = KeptAliveBackend(backend_idle_s)
    try:
        client = client_for(backend.url)
        assert client.status().state == "ready"  # /ready and /api/v1/model/info on one connection
        time.sleep(backend_idle_s - 1)
        assert client.status().state == "ready"
        wait_until(lambda: backend.closed_by_client, timeout=2, what="the page to close the idle connection")
    finally:
        backend.close()
    assert backend.connections == 2
    assert len(backend.closed_by_client) == 1 and backend.closed_here == 0
