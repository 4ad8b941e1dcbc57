"""People's corrections through the real app: tokens, the store (SQLite here, PostgreSQL in
test_feedback_postgres.py), review, snapshot, retention and the metric."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mnist_backend.feedback.store import FeedbackStore, database_url
from mnist_backend.main import create_app
from mnist_contract.feedback_snapshot import input_hash, parse_snapshot
from tests.conftest import ADMIN_HEADERS, make_settings

KEY = "a-feedback-signing-key-of-32-characters-at-least"  # pragma: allowlist secret


def as_floats(digit: np.ndarray) -> list[float]:
    return (digit.astype(np.float32) / 255.0).ravel().tolist()


@pytest.fixture
def feedback_settings(tmp_path: Path, model_dir: Path) -> dict[str, object]:
    key_file = tmp_path / "feedback_key"
    key_file.write_text(KEY + "\n")
    return {
        "feedback_database_url": f"sqlite:///{tmp_path / 'feedback.sqlite3'}",
        "feedback_key_file": key_file,
    }


@pytest.fixture
def feedback_client(model_dir: Path, feedback_settings: dict[str, object]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(model_dir, **feedback_settings))) as test_client:
        yield test_client


def predict(client: TestClient, pixels: np.ndarray) -> dict:
    response = client.post("/api/v1/predict", json={"image": as_floats(pixels)})
    assert response.status_code == 200, response.text
    return response.json()


def correct(client: TestClient, answer: dict, label: int, **changes: object) -> object:
    body = {"prediction_id": answer["prediction_id"], "token": answer["feedback_token"], "label": label, **changes}
    return client.post("/api/v1/feedback", json=body)


def feedback_samples(client: TestClient) -> dict[tuple[str, str], float]:
    samples = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("mnist_feedback_total{"):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(part.split("=", 1) for part in labels[len("mnist_feedback_total{") : -1].split(","))
            samples[(pairs["model_version"].strip('"'), pairs["verdict"].strip('"'))] = float(value)
    return samples


def test_an_answer_carries_an_id_and_a_token_only_when_feedback_is_on(client, feedback_client, mnist_digits):
    assert "prediction_id" not in predict(client, mnist_digits[3])
    answer = predict(feedback_client, mnist_digits[3])
    assert len(answer["prediction_id"]) == 32 and len(answer["feedback_token"]) < 1024
    assert predict(feedback_client, mnist_digits[3])["prediction_id"] != answer["prediction_id"]
    off = client.post("/api/v1/feedback", json={"prediction_id": "0" * 32, "token": "x", "label": 3})
    assert off.status_code == 404 and "FEEDBACK_DATABASE_URL" in off.json()["detail"]


def test_a_correction_is_stored_reviewed_and_exported_as_the_model_saw_it(feedback_client, mnist_digits, model_version):
    answer = predict(feedback_client, mnist_digits[7])
    wrong_label = (answer["digit"] + 1) % 10
    reply = correct(feedback_client, answer, wrong_label)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "prediction_id": answer["prediction_id"],
        "status": "recorded",
        "verdict": "wrong",
        "model_version": model_version,
    }
    assert feedback_samples(feedback_client)[(model_version, "wrong")] == 1

    queue = feedback_client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()
    assert queue["counts"] == {"pending": 1, "accepted": 0, "rejected": 0}
    (group,) = queue["groups"]
    pixels = np.frombuffer(base64.b64decode(group["pixels_base64"]), np.uint8).reshape(28, 28)
    # What the model saw: the MNIST digit itself (it was sent as floats of it).
    np.testing.assert_array_equal(pixels, mnist_digits[7])
    assert group["input_hash"] == input_hash(mnist_digits[7])
    assert (group["label"], group["predicted_digit"], group["count"]) == (wrong_label, answer["digit"], 1)

    review = {"decision": "accept", "groups": [group["key"]]}
    assert feedback_client.post("/api/v1/admin/feedback/review", json=review, headers=ADMIN_HEADERS).json() == {
        "decision": "accept",
        "changed": 1,
    }
    exported = feedback_client.get("/api/v1/admin/feedback/snapshot", headers=ADMIN_HEADERS)
    assert exported.status_code == 200
    snapshot = parse_snapshot(exported.content)
    assert len(snapshot) == 1 and exported.headers["x-snapshot-corrections"] == "1"
    assert snapshot.labels.tolist() == [wrong_label] and snapshot.model_versions == (model_version,)
    np.testing.assert_array_equal(snapshot.images[0], mnist_digits[7])


def test_a_repeat_updates_the_correction_and_does_not_count_twice(feedback_client, mnist_digits, model_version):
    answer = predict(feedback_client, mnist_digits[2])
    assert correct(feedback_client, answer, answer["digit"]).json()["status"] == "recorded"
    second = correct(feedback_client, answer, (answer["digit"] + 3) % 10).json()
    assert second["status"] == "updated" and second["verdict"] == "wrong"
    samples = feedback_samples(feedback_client)
    assert samples[(model_version, "right")] == 1 and samples[(model_version, "wrong")] == 0
    (group,) = feedback_client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()["groups"]
    assert group["label"] == (answer["digit"] + 3) % 10


def test_duplicates_collapse_into_one_group_and_one_snapshot_row(feedback_client, mnist_digits):
    for _ in range(3):
        answer = predict(feedback_client, mnist_digits[5])
        assert correct(feedback_client, answer, 5).status_code == 200
    (group,) = feedback_client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()["groups"]
    assert group["count"] == 3
    review = {"decision": "accept", "groups": [group["key"]]}
    reviewed = feedback_client.post("/api/v1/admin/feedback/review", json=review, headers=ADMIN_HEADERS)
    assert reviewed.json()["changed"] == 3
    snapshot = feedback_client.get("/api/v1/admin/feedback/snapshot", headers=ADMIN_HEADERS)
    assert len(parse_snapshot(snapshot.content)) == 1


def test_forged_altered_misplaced_and_expired_tokens_are_refused_with_a_sentence(
    model_dir, feedback_settings, mnist_digits
):
    now = [1_900_000_000.0]
    app = create_app(make_settings(model_dir, **feedback_settings, feedback_token_ttl_s=600))
    app.state.feedback.clock = lambda: now[0]
    with TestClient(app) as client:
        first, second = predict(client, mnist_digits[1]), predict(client, mnist_digits[4])
        token = first["feedback_token"]
        # One character changed anywhere in the token: the signature no longer matches.
        altered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
        for bad in (altered, "not-a-token", "", "x" * 5000):
            reply = correct(client, first, 1, token=bad)
            assert reply.status_code in (403, 413, 422), (bad[:20], reply.text)
        assert "not one this service issued" in correct(client, first, 1, token=altered).json()["detail"]
        # A token signed with another key (another deployment, or made up by the client).
        other = create_app(make_settings(model_dir, feedback_database_url="sqlite://"))
        with TestClient(other) as other_client:
            foreign = predict(other_client, mnist_digits[1])
        assert correct(client, foreign, 1).status_code == 403
        # A real token sent for another prediction (replayed onto it).
        misplaced = correct(client, second, 4, token=token)
        assert misplaced.status_code == 403 and "another prediction" in misplaced.json()["detail"]
        now[0] += 601
        expired = correct(client, first, 1)
        assert expired.status_code == 410 and "FEEDBACK_TOKEN_TTL_S" in expired.json()["detail"]
        metrics = client.get("/metrics").text
        assert 'mnist_feedback_refused_total{reason="expired"} 1.0' in metrics
        assert 'mnist_feedback_refused_total{reason="other_prediction"} 1.0' in metrics
        queue = client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()
        assert queue["counts"]["pending"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": 10}, "less than or equal to 9"),
        ({"label": -1}, "greater than or equal to 0"),
        ({"label": "7"}, "valid integer"),
        ({"label": 7.0}, "valid integer"),
        ({"prediction_id": "../../etc"}, "pattern"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_a_label_outside_0_to_9_and_other_bad_bodies_are_422(feedback_client, mnist_digits, change, message):
    answer = predict(feedback_client, mnist_digits[0])
    body = {"prediction_id": answer["prediction_id"], "token": answer["feedback_token"], "label": 0, **change}
    reply = feedback_client.post("/api/v1/feedback", json=body)
    assert reply.status_code == 422 and message in reply.json()["detail"], reply.text


def test_feedback_bodies_have_their_own_small_limit(feedback_client, mnist_digits):
    answer = predict(feedback_client, mnist_digits[0])
    reply = correct(feedback_client, answer, 0, padding="x" * 10_000)
    assert reply.status_code == 413


def test_review_and_snapshot_need_an_admin_key(feedback_client):
    for method, path in (("GET", "/api/v1/admin/feedback"), ("GET", "/api/v1/admin/feedback/snapshot")):
        wrong_key = {"X-API-Key": "not-a-key-of-this-service"}  # pragma: allowlist secret
        assert feedback_client.request(method, path, headers=wrong_key).status_code in (401, 403)
    review = {"decision": "accept", "groups": ["0" * 64 + ":1"]}
    assert feedback_client.post("/api/v1/admin/feedback/review", json=review).status_code in (401, 403)


def test_retention_deletes_unreviewed_corrections_only(model_dir, feedback_settings, mnist_digits):
    import asyncio

    app = create_app(make_settings(model_dir, **feedback_settings, feedback_retention_days=1))
    service = app.state.feedback
    with TestClient(app) as client:
        kept, forgotten = predict(client, mnist_digits[8]), predict(client, mnist_digits[9])
        correct(client, kept, 8)
        correct(client, forgotten, 9)
        review = {"decision": "reject", "groups": [f"{input_hash(mnist_digits[8])}:8"]}
        client.post("/api/v1/admin/feedback/review", json=review, headers=ADMIN_HEADERS)
        later = datetime.now(UTC) + timedelta(days=1, hours=1)
        service.clock = later.timestamp
        assert asyncio.run(service.purge_unreviewed()) == 1
        counts = client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()["counts"]
        assert counts == {"pending": 0, "accepted": 0, "rejected": 1}


def migrate_together(stores: list[FeedbackStore]) -> list[BaseException]:
    """Each store's migrate() on a thread of its own, all started at once; what they raised."""
    errors: list[BaseException] = []

    def migrate(store: FeedbackStore) -> None:
        try:
            store.migrate()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_stores_of_one_process_migrate_their_own_databases_at_the_same_time(tmp_path):
    # An app's retention task can still be migrating when the next app of the same process starts.
    stores = [FeedbackStore(database_url(f"sqlite:///{tmp_path / f'store{n}.sqlite3'}")) for n in range(6)]
    assert not migrate_together(stores)
    for store in stores:
        assert store.counts() == {"pending": 0, "accepted": 0, "rejected": 0}
        store.close()


def test_the_store_down_refuses_feedback_with_503_and_predictions_stay_200(model_dir, tmp_path, mnist_digits):
    # A PostgreSQL address where nothing listens: the same as a database that went away.
    settings = make_settings(
        model_dir, feedback_database_url="postgresql://feedback@127.0.0.1:9/feedback", feedback_key_file=None
    )
    with TestClient(create_app(settings)) as client:
        answer = predict(client, mnist_digits[6])
        reply = correct(client, answer, 6)
        assert reply.status_code == 503 and "predictions are unaffected" in reply.json()["detail"]
        assert "127.0.0.1:9" in reply.json()["detail"] and reply.headers["retry-after"] == "30"
        assert predict(client, mnist_digits[6])["digit"] == 6
        assert 'mnist_feedback_refused_total{reason="store_unavailable"} 1.0' in client.get("/metrics").text


def test_a_snapshot_has_no_pickles_and_round_trips(feedback_client, mnist_digits):
    for digit in (1, 2):
        correct(feedback_client, predict(feedback_client, mnist_digits[digit]), digit)
    groups = feedback_client.get("/api/v1/admin/feedback", headers=ADMIN_HEADERS).json()["groups"]
    review = {"decision": "accept", "groups": [g["key"] for g in groups]}
    feedback_client.post("/api/v1/admin/feedback/review", json=review, headers=ADMIN_HEADERS)
    data = feedback_client.get("/api/v1/admin/feedback/snapshot", headers=ADMIN_HEADERS).content
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:  # would raise on an object array
        assert sorted(arrays.files) == sorted(
            ["format_version", "images", "labels", "predicted", "input_hashes", "model_versions"]
        )
    assert sorted(parse_snapshot(data).labels.tolist()) == [1, 2]


def test_unusable_feedback_secrets_stop_the_start_with_a_sentence(model_dir, tmp_path):
    from pydantic import ValidationError

    short = tmp_path / "short_key"
    short.write_text("too-short\n")
    cases = [
        ({"feedback_key_file": None}, "needs FEEDBACK_KEY_FILE"),
        ({"feedback_key_file": short}, "at least 32 characters"),
        ({"feedback_key_file": tmp_path / "missing"}, "FEEDBACK_KEY_FILE .* cannot be read"),
        (
            {"feedback_key_file": None, "environment": "dev", "feedback_database_password_file": tmp_path / "nope"},
            "FEEDBACK_DATABASE_PASSWORD_FILE .* cannot be read",
        ),
    ]
    for overrides, message in cases:
        settings = {
            "environment": "production",
            "api_keys": "a-production-client-key-long-enough",  # pragma: allowlist secret
            "feedback_database_url": "postgresql://feedback@127.0.0.1:9/feedback",
            **overrides,
        }
        with pytest.raises(ValidationError, match=message):
            make_settings(model_dir, **settings)
