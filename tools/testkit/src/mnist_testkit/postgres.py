"""A real PostgreSQL for tests: Debian's server binaries, a temporary data directory, 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mnist_testkit.waiting import free_port

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str | None
    directory: Path  # data/, sockets/, log

    def stop(self) -> None:
        """Stop the server (as an outage or a database restart looks to its clients)."""
        subprocess.run(_as_user([*self._pg_ctl(), "-m", "fast", "stop"]), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory / 'sockets'}"
        command = [*self._pg_ctl(), "-o", options, "-l", str(self.directory / "log"), "-w", "start"]
        subprocess.run(_as_user(command), check=True, capture_output=True)

    def _pg_ctl(self) -> list[str]:
        return [str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.directory / "data")]

    def uri(self, database: str = "postgres") -> str:
        """The SQLAlchemy URI MLflow takes (``postgresql+psycopg2://``)."""
        credentials = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql+psycopg2://{credentials}@127.0.0.1:{self.port}/{database}"


def installed() -> bool:
    return (POSTGRES_BIN / "initdb").exists()


def _as_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as nobody."""
    return ["runuser", "-u", "nobody", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres(user: str = "mlflow", password: str | None = None) -> Iterator[Postgres]:
    """A server until the block ends. With ``password``, connections over TCP must give it
    (scram-sha-256), as in the Compose service; without, they are trusted."""
    if not installed():
        raise RuntimeError(f"PostgreSQL is not installed ({POSTGRES_BIN}; scripts/install-system-deps.sh installs it)")
    # Not under pytest's temporary folder: that one is private to root, and nobody must enter.
    directory = Path(tempfile.mkdtemp(prefix="mnist-postgres-"))
    data, sockets = directory / "data", directory / "sockets"
    sockets.mkdir()
    initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", user, "--auth-local", "trust"]
    if password:
        (directory / "password").write_text(password + "\n")
        initdb += ["--auth-host", "scram-sha-256", "--pwfile", str(directory / "password")]
    else:
        initdb += ["--auth-host", "trust"]
    if os.geteuid() == 0:
        for path in (directory, sockets, *directory.iterdir()):
            shutil.chown(path, "nobody")
    server = Postgres(free_port(), user, password, directory)
    try:
        subprocess.run(_as_user(initdb), check=True, capture_output=True)
        server.start()
        yield server
    finally:
        subprocess.run(_as_user([*server._pg_ctl(), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
