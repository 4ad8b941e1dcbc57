from __future__ import annotations

import re

from tests.api.test_predict import as_floats


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in the exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_template_and_predictions_by_digit(client, mnist_digits, model_version):
    for digit in (1, 1, 8):
        client.post("/api/v1/predict", json={"image": as_floats(mnist_digits[digit])})
    client.post("/api/v1/predict", json={"image": [2.0] * 784})
    client.get("/no/such/path/12345")
    text = client.get("/metrics").text

    assert sample(text, "mnist_http_requests_total", route="/api/v1/predict", method="POST", status="200") == 3
    assert sample(text, "mnist_http_requests_total", route="/api/v1/predict", method="POST", status="422") == 1
    assert sample(text, "mnist_predictions_total", digit="1") == 2
    assert sample(text, "mnist_predictions_total", digit="8") == 1
    assert sample(text, "mnist_predictions_total", digit="5") == 0  # present from the start
    assert sample(text, "mnist_prediction_confidence_count") == 3
    assert sample(text, "mnist_inference_duration_seconds_count", kind="single") == 3
    assert sample(text, "mnist_http_request_duration_seconds_count", route="/api/v1/predict") == 4
    assert sample(text, "mnist_model_info", version=model_version) == 1
    assert sample(text, "mnist_model_ready") == 1
    assert sample(text, "mnist_http_requests_in_flight") == 1  # the /metrics request itself
    assert sample(text, "mnist_busy_rejections_total", kind="image_decoding") == 0  # present from the start
    assert sample(text, "mnist_model_reloads_total", result="success") == 1
    # Raw paths never become label values.
    assert "/no/such/path" not in text
    assert sample(text, "mnist_http_requests_total", route="<unmatched>", status="404") == 1


def test_metric_label_values_stay_bounded(client):
    for i in range(20):
        client.get(f"/random/{i}")
        client.request("BREW", "/health")
    text = client.get("/metrics").text
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert routes <= {"/health", "/metrics", "<unmatched>"}
    assert 'method="BREW"' not in text
