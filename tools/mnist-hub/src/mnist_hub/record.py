"""The deployment record and the deploy lock of one environment (its state folder).

A record is one ``key=value`` per line: what an environment runs (current.env), what it ran before
(previous.env), and one line per attempt in history.log (``key=value`` pairs separated by spaces).
Values never hold newlines. The format is the one earlier releases wrote, so their records read.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pwd
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from mnist_hub.errors import DeployError

CURRENT, PREVIOUS, HISTORY, LOCK, LOCK_HOLDER = "current.env", "previous.env", "history.log", "lock", "lock.holder"


@dataclass(frozen=True)
class Record:
    """What one deploy put in place (current.env), or one attempt (a history line)."""

    tag: str = ""
    commit: str = ""
    dirty: str = ""
    image_repository: str = ""
    model_version: str = ""
    model_source: str = ""
    model_registry_version: str = ""
    pool: str = ""
    deployed_at: str = ""
    result: str = ""
    by: str = ""

    @classmethod
    def from_pairs(cls, pairs: dict[str, str]) -> Record:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in pairs.items() if key in known})

    def pairs(self, keep_empty: bool = True) -> list[tuple[str, str]]:
        return [
            (f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if keep_empty or getattr(self, f.name)
        ]

    def summary(self) -> str:
        """One line for people."""
        if not self.tag:
            return "nothing recorded"
        return f"{self.tag} (commit {self.commit[:12]}, model {self.model_version}, deployed {self.deployed_at})"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operator() -> str:
    """user@host, as `id -un`@`hostname` say."""
    return f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"


def read_record(path: Path) -> Record:
    """The record in ``path``; an empty one when the file is missing (nothing deployed yet)."""
    if not path.is_file():
        return Record()
    pairs: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key not in pairs:
            pairs[key] = value
    return Record.from_pairs(pairs)


def write_atomically(path: Path, text: str) -> None:
    """Replaced in one rename, so a reader never sees half a file."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    new.replace(path)


def write_record(path: Path, record: Record) -> None:
    write_atomically(path, "".join(f"{key}={value}\n" for key, value in record.pairs()))


def append_history(state: Path, record: Record) -> None:
    with (state / HISTORY).open("a") as history:
        history.write(" ".join(f"{key}={value}" for key, value in record.pairs(keep_empty=False)) + "\n")


def read_history(state: Path, last: int | None = None) -> list[Record]:
    """The attempts, oldest first (the ``last`` ones)."""
    path = state / HISTORY
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        pairs = dict(item.partition("=")[::2] for item in line.split(" ") if "=" in item)
        records.append(Record.from_pairs(pairs))
    return records[-last:] if last else records


class LockHeldError(Exception):
    """Another deploy (or rollback) of the environment holds its lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take_lock(state: Path, env: str, description: str, inherited_fd: str | None) -> DeployLock:
    """The environment's lock, or the command stops naming who holds it."""
    lock = DeployLock(state)
    try:
        lock.acquire(description, inherited_fd)
    except LockHeldError as held:
        raise DeployError(
            f"another deploy of {env} is running ({held.holder}); nothing was changed: wait for it to finish"
        ) from None
    return lock


class DeployLock:
    """One deploy (or rollback) of an environment at a time: ``fcntl.flock`` on state/lock, held
    until this process exits. A caller that holds it already (remote-deploy.sh, which locks before
    it touches the checkout) passes its descriptor in DEPLOY_LOCK_FD: the same open file."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self._file: IO[str] | None = None

    def acquire(self, description: str, inherited_fd: str | None = None) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        path = self.state / LOCK
        fd: int
        if inherited_fd and inherited_fd.isdigit() and _same_file(f"/dev/fd/{inherited_fd}", path):
            fd = int(inherited_fd)
        else:
            self._file = path.open("a")
            fd = self._file.fileno()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(self.holder() or "holder unknown") from None
        self.describe(description)

    def describe(self, description: str) -> None:
        """Says who holds the lock and what it does (rewritten once a deploy knows its tag)."""
        holder = f"pid {os.getpid()}, {operator()}, since {now_utc()}, {description}\n"
        write_atomically(self.state / LOCK_HOLDER, holder)

    def release(self) -> None:
        """Lets the lock go (it also goes when the process ends). An inherited descriptor stays
        with its owner, who releases it."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    @property
    def fd(self) -> int | None:
        """The descriptor this process opened for the lock (a command it runs can inherit it)."""
        return self._file.fileno() if self._file is not None else None

    def holder(self) -> str:
        try:
            return (self.state / LOCK_HOLDER).read_text().strip()
        except OSError:
            return ""

    def is_held(self) -> bool:
        """Whether a deploy holds the lock now (tries it without waiting, and lets it go)."""
        path = self.state / LOCK
        if not path.exists():
            return False
        with path.open("a") as probe:
            try:
                fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        return False


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
