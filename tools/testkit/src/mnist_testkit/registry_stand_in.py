"""A stand-in for GHCR, which cannot be reached from here, and the check of what backend.yml's
image job gave it.

``install DIR`` writes DIR/docker, to put first on a job's or a deploy host's PATH: ``login``
records its arguments and password (DIR/login.args, DIR/login.password); a ``pull`` of a ghcr.io
image fails as from a registry that holds nothing (recorded in DIR/pulled); a ``push`` of a
ghcr.io image records it with its image ID (DIR/pushed) and fails, as a real push would, when no
such image is here. Every other command goes to the real docker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REGISTRY = "ghcr.io/"


def install(folder: Path, real_docker: str) -> Path:
    """``folder`` (emptied: what an earlier run recorded goes) with the ``docker`` stand-in in it."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shim = folder / "docker"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from mnist_testkit.registry_stand_in import answer\n"
        f"sys.exit(answer({str(folder)!r}, {real_docker!r}, sys.argv[1:]))\n"
    )
    shim.chmod(0o755)
    return folder


def answer(folder: str, real_docker: str, args: list[str]) -> int:
    """What the stand-in does with one docker command line (see the module's text)."""
    records = Path(folder)
    command, image = (args[0], args[-1]) if args else ("", "")
    if command == "login":
        (records / "login.args").write_text(" ".join(args[1:]) + "\n")
        (records / "login.password").write_text(sys.stdin.read())
        print("Login Succeeded (a stand-in: nothing was sent)")
        return 0
    if command == "pull" and image.startswith(REGISTRY):
        with (records / "pulled").open("a") as pulled:
            pulled.write(f"{image}\n")
        print(
            f"Error response from daemon: manifest for {image} not found (a stand-in registry, empty)", file=sys.stderr
        )
        return 1
    if command == "push" and image.startswith(REGISTRY):
        found = subprocess.run(
            [real_docker, "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True
        )
        if found.returncode != 0:
            sys.stderr.write(found.stderr)
            return found.returncode
        with (records / "pushed").open("a") as pushed:
            pushed.write(f"{image} {found.stdout.strip()}\n")
        print(f"{image}: pushed (to a stand-in: nothing was sent)")
        return 0
    os.execv(real_docker, [real_docker, *args])  # noqa: S606 - the real docker, with the caller's arguments
    return 127  # not reached: execv replaces this process


def image_job_problems(folder: Path, actions: Path, repository: str, commit: str, token: str) -> list[str]:
    """What backend.yml's image job gave the stand-in and the recording actions (``actions``:
    mnist_testkit.act's records), against image.yml: a login as the job's actor with its token, a
    look for the branch's last backend image (the build cache), the backend and frontend pushed by
    commit and by branch (one image each, four pushes), the backend scanned by Trivy for the report
    and for the gate, and the report uploaded to code scanning under its category. Empty: as it says."""
    problems = []
    login = (folder / "login.args").read_text().strip() if (folder / "login.args").exists() else "nothing"
    password = (folder / "login.password").read_text().rstrip("\n") if (folder / "login.password").exists() else ""
    if login != "ghcr.io --username nektos/act --password-stdin" or password != token:
        problems.append(f"the registry login got '{login}', not the job's actor and token")
    pulled = (folder / "pulled").read_text().split() if (folder / "pulled").exists() else []
    if f"{repository}/backend:main" not in pulled:
        problems.append(f"no look for the build cache ({repository}/backend:main), pulls: {pulled}")
    lines = (folder / "pushed").read_text().splitlines() if (folder / "pushed").exists() else []
    pushed = dict(line.split() for line in lines)
    for component in ("backend", "frontend"):
        by_commit, by_branch = f"{repository}/{component}:{commit}", f"{repository}/{component}:main"
        if by_commit not in pushed or pushed[by_commit] != pushed.get(by_branch):
            problems.append(f"{component}: not pushed by commit and by branch as one image: {pushed}")
    if len(lines) != 4:
        problems.append(f"{len(lines)} pushes, not 4: {lines}")
    calls = [json.loads(line) for line in actions.read_text().splitlines()] if actions.exists() else []
    image = f"{repository}/backend:{commit}"
    if len(calls) != 3:
        return [*problems, f"{len(calls)} calls of the recording actions, not 3 (report, upload, gate): {calls}"]
    report, upload, gate = calls
    if not report["action"].startswith("aquasecurity/trivy-action@") or gate["action"] != report["action"]:
        problems.append(f"the report and the gate are not both Trivy: {report['action']}, {gate['action']}")
    if [report["inputs"].get(key) for key in ("image-ref", "format", "output")] != [
        image,
        "sarif",
        "trivy-backend.sarif",
    ]:
        problems.append(f"the Trivy report got {report['inputs']}, not a SARIF report of {image}")
    if not upload["action"].startswith("github/codeql-action@") or upload["inputs"] != {
        "sarif_file": "trivy-backend.sarif",
        "category": "trivy-backend",
    }:
        problems.append(f"the upload got {upload}, not trivy-backend.sarif under its category")
    if [gate["inputs"].get(key) for key in ("image-ref", "exit-code", "ignore-unfixed")] != [image, "1", "true"]:
        problems.append(f"the Trivy gate got {gate['inputs']}, not a failing scan of {image}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_testkit.registry_stand_in", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("install", help="write DIR/docker (DIR is emptied first)")
    put.add_argument("folder", type=Path)
    check = commands.add_parser(
        "check-image-job", help="exit 1, saying why, unless the image job did as image.yml says"
    )
    check.add_argument("folder", type=Path, help="the stand-in's folder")
    check.add_argument("actions", type=Path, help="the recording actions' actions.jsonl")
    check.add_argument("repository")
    check.add_argument("commit")
    check.add_argument("--token-from-env", required=True, metavar="NAME", help="the job's token")
    args = parser.parse_args(argv)
    if args.command == "install":
        real = shutil.which("docker")
        if real is None:
            parser.error("no docker on PATH to stand in front of")
        install(args.folder.resolve(), real)
        return 0
    problems = image_job_problems(
        args.folder, args.actions, args.repository, args.commit, os.environ[args.token_from_env]
    )
    for problem in problems:
        print(f"image job: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
