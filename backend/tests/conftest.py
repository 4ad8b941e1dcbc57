"""Fixtures shared by the backend tests: the real default model, drawings, clients.

The tests serve a real ONNX model trained by the training pipeline (``make test`` trains
the default one when ``models/CURRENT`` is missing). ``MODEL_DIR`` points at it.
"""

from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFilter

from mnist_backend.config import Settings
from mnist_backend.main import create_app
from mnist_testkit.digits import load_digits
from mnist_testkit.models import trained_model_dir
from tests.server_process import ServerProcess, server_starter

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return trained_model_dir()


@pytest.fixture(scope="session")
def model_version(model_dir: Path) -> str:
    return (model_dir / "CURRENT").read_text().strip()


@pytest.fixture
def store_copy(tmp_path: Path, model_dir: Path, model_version: str) -> Path:
    """A private, writable copy of the model store holding the current version (for breaking it)."""
    target = tmp_path / "models"
    target.mkdir()
    shutil.copytree(model_dir / model_version, target / model_version)
    for path in (target / model_version).iterdir():
        path.chmod(0o644)
    (target / "CURRENT").write_text(model_version + "\n")
    return target


@pytest.fixture(scope="session")
def mnist_digits() -> dict[int, np.ndarray]:
    """One real held-out MNIST image per digit, uint8 28x28, white on black."""
    return {digit: np.asarray(rows, dtype=np.uint8) for digit, rows in load_digits().items()}


ADMIN_KEY = "test-admin-key-long-enough"
ADMIN_HEADERS = {"X-API-Key": ADMIN_KEY}


def make_settings(model_dir: Path, **overrides: object) -> Settings:
    """Test settings: text logs and one admin key (``ADMIN_HEADERS``) unless overridden."""
    return Settings(**{"model_dir": model_dir, "log_format": "text", "admin_api_keys": ADMIN_KEY, **overrides})


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes with extra environment variables; all stopped afterwards."""
    start, servers = server_starter(tmp_path)
    yield start
    for server in servers:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
def client(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(model_dir))) as test_client:
        yield test_client


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def render_as_canvas_drawing(
    digit: np.ndarray,
    canvas_size: int = 280,
    scale: int = 7,
    offset: tuple[int, int] = (90, 30),
    thickness: int = 5,
    style: str = "white-on-black",
) -> Image.Image:
    """What a person's drawing looks like: upscaled, thick strokes, off-centre, any colours."""
    stroke = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    stroke = stroke.filter(ImageFilter.MaxFilter(thickness))  # thicker pen
    ink = Image.new("L", (canvas_size, canvas_size), 0)
    ink.paste(stroke, offset)
    if style == "white-on-black":
        return ink.convert("RGB")
    if style == "black-on-white":
        return Image.eval(ink, lambda v: 255 - v).convert("RGB")
    if style == "transparent":  # a canvas export: colour everywhere, ink only in alpha
        rgba = Image.new("RGBA", ink.size, (20, 20, 200, 0))
        rgba.putalpha(ink)
        return rgba
    raise ValueError(style)
