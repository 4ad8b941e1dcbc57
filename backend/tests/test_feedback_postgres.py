"""The feedback store on a real PostgreSQL: replicas migrate once, corrections survive the
server going away (503, predictions unaffected) and come back with it."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mnist_backend.feedback.store import FeedbackStore, database_url
from mnist_backend.main import create_app
from mnist_testkit import postgres
from tests.api.test_feedback import KEY, correct, migrate_together, predict
from tests.conftest import ADMIN_HEADERS, make_settings

pytestmark = pytest.mark.skipif(not postgres.installed(), reason="PostgreSQL 15 is not installed")
PASSWORD = "feedback-test-password"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def server():
    with postgres.running_postgres(user="feedback", password=PASSWORD) as running:
        yield running


def fresh_database(server: postgres.Postgres, name: str) -> str:
    admin = sa.create_engine(database_url(f"postgresql://feedback@127.0.0.1:{server.port}/postgres", PASSWORD))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql://feedback@127.0.0.1:{server.port}/{name}"


def test_replicas_starting_together_migrate_once(server):
    url = database_url(fresh_database(server, "migrate_race"), PASSWORD)
    stores = [FeedbackStore(url) for _ in range(4)]
    assert not migrate_together(stores)
    with stores[0].engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
        assert connection.execute(sa.text("SELECT count(*) FROM corrections")).scalar_one() == 0
    for store in stores:
        store.close()


def test_corrections_go_to_postgres_and_the_store_going_away_costs_no_prediction(
    server, model_dir, tmp_path: Path, mnist_digits
):
    key_file, password_file = tmp_path / "feedback_key", tmp_path / "feedback_db_password"
    key_file.write_text(KEY + "\n")
    password_file.write_text(PASSWORD + "\n")
    settings = make_settings(
        model_dir,
        feedback_database_url=fresh_database(server, "feedback_app"),
        feedback_database_password_file=password_file,
        feedback_key_file=key_file,
    )
    with TestClient(create_app(settings)) as client:
        answer = predict(client, mnist_digits[3])
        assert correct(client, answer, 8).json()["status"] == "recorded"
        queue = client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()
        assert queue["counts"]["pending"] == 1
        pixels = np.frombuffer(base64.b64decode(queue["groups"][0]["pixels_base64"]), np.uint8)
        np.testing.assert_array_equal(pixels.reshape(28, 28), mnist_digits[3])

        server.stop()  # as a database restart or an outage looks to the backend
        try:
            later = predict(client, mnist_digits[4])
            refused = correct(client, later, 4)
            assert refused.status_code == 503 and "predictions are unaffected" in refused.json()["detail"]
            assert predict(client, mnist_digits[5])["digit"] == 5
        finally:
            server.start()
        # Back: the pool's stale connections are replaced (pre-ping); the same token still works.
        assert correct(client, later, 4).json()["status"] == "recorded"
        assert client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()["counts"]["pending"] == 2
