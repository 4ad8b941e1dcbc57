from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mnist_backend.main import create_app
from tests.conftest import make_settings, png_base64, render_as_canvas_drawing


def as_floats(digit: np.ndarray) -> list[float]:
    return (digit.astype(np.float32) / 255.0).ravel().tolist()


def test_predict_784_floats_returns_the_contract(client, mnist_digits, model_version):
    response = client.post("/api/v1/predict", json={"image": as_floats(mnist_digits[3])})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"digit", "confidence", "probabilities", "model_version", "inference_ms"}
    assert body["digit"] == 3
    assert body["model_version"] == model_version
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
    assert body["inference_ms"] > 0


def test_predict_accepts_28_rows_of_28(client, mnist_digits):
    image = (mnist_digits[7] / 255.0).tolist()
    assert client.post("/api/v1/predict", json={"image": image}).json()["digit"] == 7


def test_every_real_mnist_digit_as_floats(client, mnist_digits):
    for digit, pixels in mnist_digits.items():
        assert client.post("/api/v1/predict", json={"image": as_floats(pixels)}).json()["digit"] == digit


@pytest.mark.parametrize("style", ["white-on-black", "black-on-white", "transparent"])
def test_golden_real_digits_drawn_on_a_canvas_are_read_correctly(client, mnist_digits, style):
    """Real held-out MNIST digits, upscaled, thickened and off-centre as a person draws them."""
    offsets = [
        (10, 10),
        (150, 20),
        (60, 140),
        (140, 130),
        (30, 60),
        (100, 5),
        (5, 150),
        (120, 80),
        (70, 70),
        (150, 150),
    ]
    wrong = {}
    for digit, pixels in mnist_digits.items():
        drawing = render_as_canvas_drawing(pixels, canvas_size=400, scale=8, offset=offsets[digit], style=style)
        body = client.post("/api/v1/predict", json={"image_base64": png_base64(drawing)}).json()
        if body["digit"] != digit:
            wrong[digit] = body["digit"]
    assert wrong == {}, f"misread digits (true: predicted) {wrong}"


def test_return_input_shows_the_28x28_the_model_saw(client, mnist_digits):
    drawing = render_as_canvas_drawing(mnist_digits[0])
    body = client.post("/api/v1/predict", json={"image_base64": png_base64(drawing), "return_input": True}).json()
    seen = np.asarray(body["input_image"])
    assert seen.shape == (28, 28)
    assert seen.min() >= 0 and seen.max() == pytest.approx(1, abs=1e-3)


def test_batch_runs_every_image_in_one_call(client, mnist_digits):
    images = [as_floats(mnist_digits[d]) for d in range(10)]
    images.append(png_base64(render_as_canvas_drawing(mnist_digits[4])))
    response = client.post("/api/v1/predict/batch", json={"images": images})
    assert response.status_code == 200
    body = response.json()
    assert [p["digit"] for p in body["predictions"]] == [*range(10), 4]
    assert body["model_version"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"image": [0.5] * 783}, "784 values, got 783"),
        ({"image": [0.5] * 783 + [2.0]}, "between 0 and 1"),
        ({"image": [[0.5] * 28] * 27}, "got shape 27x28"),
        ({"image": ["a"] * 784}, "image"),
        ({}, "exactly one"),
        ({"image": [0.0] * 784, "image_base64": "abc"}, "exactly one"),
        ({"image_base64": "!!!"}, "not valid base64"),
        ({"image_base64": "aGVsbG8="}, "not a PNG or JPEG"),
        ({"image": [0.0] * 784, "extra": 1}, "extra"),
    ],
)
def test_predict_rejects_bad_input_with_a_422_naming_the_problem(client, payload, fragment):
    response = client.post("/api/v1/predict", json=payload)
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_predict_rejects_an_empty_canvas(client):
    from PIL import Image

    response = client.post("/api/v1/predict", json={"image_base64": png_base64(Image.new("RGB", (280, 280), "white"))})
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]


def test_nan_in_the_json_is_a_422_not_a_crash(client):
    body = b'{"image": [' + b",".join([b"0.1"] * 783 + [b"NaN"]) + b"]}"
    response = client.post("/api/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_malformed_json_is_a_422(client):
    response = client.post("/api/v1/predict", content=b'{"image": [0.1,', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "json" in response.json()["detail"].lower()


def test_wrong_media_type_is_a_415(client):
    response = client.post("/api/v1/predict", content=b"image=1", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


def test_too_many_images_in_a_batch_is_a_413(model_dir):
    with TestClient(create_app(make_settings(model_dir, max_batch=4))) as small:
        response = small.post("/api/v1/predict/batch", json={"images": [[0.1] * 784] * 5})
    assert response.status_code == 413
    assert "too many images in one batch: 5 (MAX_BATCH is 4)" in response.json()["detail"]


def test_bad_image_in_a_batch_names_its_index(client):
    response = client.post("/api/v1/predict/batch", json={"images": [[0.1] * 784, [0.1] * 10]})
    assert response.status_code == 422
    assert "images[1]" in response.json()["detail"]


def test_body_over_the_limit_is_a_413(model_dir):
    with TestClient(create_app(make_settings(model_dir, max_body_bytes=2048))) as small:
        response = small.post("/api/v1/predict", json={"image": [0.123456] * 784})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_a_413(model_dir):
    def chunks():
        for _ in range(10):
            yield b"[" + b"0.1," * 200

    with TestClient(create_app(make_settings(model_dir, max_body_bytes=2048))) as small:
        response = small.post("/api/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
