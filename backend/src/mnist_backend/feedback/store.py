"""Where corrections live: PostgreSQL in staging and production, SQLite in dev (SQLAlchemy Core).

Every call is blocking and runs on a thread the route hands it to; the predict path never
calls here. The schema is Alembic's (``migrations/``), brought to the newest revision before
the first read or write, under a PostgreSQL advisory lock so replicas starting together
migrate once. A database that cannot be reached raises ``StoreUnavailableError`` (503).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import TypeVar

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine, make_url

from mnist_backend.feedback.schema import corrections
from mnist_backend.feedback.tokens import TokenClaims
from mnist_contract.canvas import MNIST_SIDE
from mnist_contract.feedback_snapshot import FeedbackSnapshot, input_hash

logger = logging.getLogger(__name__)
Result = TypeVar("Result")
# Any number; the one PostgreSQL lock that serializes this store's migrations.
_MIGRATION_LOCK = 0x6D6E6973
# Alembic's `context` and `op` are module globals: two migrations at once in one process (two stores,
# each on its own database) would run each other's DDL on the wrong connection.
_ALEMBIC_IN_USE = threading.Lock()


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached or refused the operation; the message says which."""


@dataclass(frozen=True)
class CorrectionGroup:
    """Pending corrections of one input with one label (duplicates collapse to a group)."""

    input_hash: str
    label: int
    predicted_digit: int
    count: int
    model_versions: tuple[str, ...]
    first_received: datetime
    pixels: np.ndarray  # uint8 [28, 28]


def database_url(url: str, password: str | None = None) -> URL:
    """``postgresql://`` means pg8000 (the driver installed, pure Python); a password from a file is
    set here, so it never sits in an environment variable."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+pg8000")
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed


def api_key_hash(key: str | None) -> str | None:
    """Which key sent a correction, without keeping the key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


class FeedbackStore:
    def __init__(self, url: URL, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        sqlite = url.get_backend_name() == "sqlite"
        # Both drivers call it timeout: SQLite's wait for a lock, pg8000's for the connection (and each
        # read from it), so a database that is away costs a correction seconds, never a hung thread.
        connect_args: dict[str, object] = {"timeout": connect_timeout_s}
        options: dict[str, object] = {} if sqlite else {"pool_size": 4, "max_overflow": 4, "pool_timeout": 5}
        self.engine: Engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **options)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    @property
    def name(self) -> str:
        """The database without its password, for logs and messages."""
        return self.url.render_as_string(hide_password=True)

    # --- schema -------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema to the newest revision; returns it."""
        config = Config()
        config.set_main_option("script_location", str(files("mnist_backend.feedback") / "migrations"))
        head = ScriptDirectory.from_config(config).get_current_head() or "base"
        with _ALEMBIC_IN_USE, self._guarded(), self.engine.connect() as connection:
            postgres = connection.dialect.name == "postgresql"
            if postgres:
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                current = MigrationContext.configure(connection).get_current_revision()
                if current != head:
                    logger.info("feedback store %s: migrating %s -> %s", self.name, current or "empty", head)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                connection.commit()
            finally:
                if postgres:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                    connection.commit()
        self._migrated = True
        return head

    def _ensure_schema(self) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if not self._migrated:
                self.migrate()

    def _run(self, work: Callable[[Connection], Result]) -> Result:
        self._ensure_schema()
        with self._guarded(), self.engine.begin() as connection:
            return work(connection)

    def _guarded(self) -> _Guard:
        return _Guard(self.name)

    # --- writes -------------------------------------------------------------------------------
    def record(self, claims: TokenClaims, label: int, key_hash: str | None, now: datetime) -> bool:
        """Store a correction; True when it is new, False when it replaced this prediction's earlier one
        (which then waits for review again)."""
        pixels = claims.pixels.astype(np.uint8).tobytes()
        row = {
            "model_version": claims.model_version,
            "input_hash": input_hash(claims.pixels),
            "input_pixels": pixels,
            "predicted_digit": claims.predicted_digit,
            "confidence": claims.confidence,
            "label": label,
            "review": "pending",
            "api_key_hash": key_hash,
            "predicted_at": datetime.fromtimestamp(claims.issued_at, UTC),
            "received_at": now,
            "reviewed_at": None,
        }

        def write(connection: Connection) -> bool:
            match = corrections.c.prediction_id == claims.prediction_id
            if connection.execute(sa.update(corrections).where(match).values(**row)).rowcount:
                return False
            connection.execute(sa.insert(corrections).values(prediction_id=claims.prediction_id, **row))
            return True

        try:
            return self._run(write)
        except sa.exc.IntegrityError:  # the same prediction inserted at the same instant elsewhere
            return self._run(write)

    def review(self, groups: Iterable[tuple[str, int]], accept: bool, now: datetime) -> int:
        """Accept or reject the pending corrections of each (input hash, label); how many changed."""
        pairs = list(groups)

        def write(connection: Connection) -> int:
            changed = 0
            for hash_hex, label in pairs:
                statement = (
                    sa.update(corrections)
                    .where(corrections.c.input_hash == hash_hex, corrections.c.label == label)
                    .where(corrections.c.review == "pending")
                    .values(review="accepted" if accept else "rejected", reviewed_at=now)
                )
                changed += connection.execute(statement).rowcount
            return changed

        return self._run(write)

    def purge_unreviewed(self, received_before: datetime) -> int:
        """Delete corrections nobody reviewed that arrived before ``received_before`` (retention)."""
        statement = sa.delete(corrections).where(
            corrections.c.review == "pending", corrections.c.received_at < received_before
        )
        return self._run(lambda connection: connection.execute(statement).rowcount)

    # --- reads --------------------------------------------------------------------------------
    def pending_groups(self, limit: int) -> list[CorrectionGroup]:
        """The oldest pending groups first, at most ``limit``."""
        c = corrections.c
        query = (
            sa.select(
                c.input_hash,
                c.label,
                sa.func.min(c.predicted_digit),
                sa.func.count(),
                sa.func.min(c.received_at),
                sa.func.min(c.prediction_id),
            )
            .where(c.review == "pending")
            .group_by(c.input_hash, c.label)
            .order_by(sa.func.min(c.received_at), c.input_hash)
            .limit(limit)
        )

        def read(connection: Connection) -> list[CorrectionGroup]:
            groups = []
            for hash_hex, label, predicted, count, first, some_id in connection.execute(query):
                pixels = connection.execute(sa.select(c.input_pixels).where(c.prediction_id == some_id)).scalar_one()
                versions = connection.execute(
                    sa.select(c.model_version)
                    .where(c.input_hash == hash_hex, c.label == label, c.review == "pending")
                    .distinct()
                    .order_by(c.model_version)
                ).scalars()
                groups.append(
                    CorrectionGroup(
                        input_hash=hash_hex,
                        label=label,
                        predicted_digit=predicted,
                        count=count,
                        model_versions=tuple(versions),
                        first_received=_aware(first),
                        pixels=_pixels(pixels),
                    )
                )
            return groups

        return self._run(read)

    def counts(self) -> dict[str, int]:
        """How many corrections are pending, accepted and rejected."""
        query = sa.select(corrections.c.review, sa.func.count()).group_by(corrections.c.review)
        rows = self._run(lambda connection: connection.execute(query).all())
        found = {str(state): int(count) for state, count in rows}
        return {state: int(found.get(state, 0)) for state in ("pending", "accepted", "rejected")}

    def snapshot(self) -> FeedbackSnapshot:
        """Every accepted correction, one per distinct input (the latest review wins), by input hash."""
        c = corrections.c
        query = (
            sa.select(c.input_hash, c.input_pixels, c.label, c.predicted_digit, c.model_version)
            .where(c.review == "accepted")
            .order_by(c.reviewed_at, c.prediction_id)
        )
        rows = {row.input_hash: row for row in self._run(lambda connection: connection.execute(query).all())}
        ordered = [rows[key] for key in sorted(rows)]
        return FeedbackSnapshot(
            images=np.stack([_pixels(row.input_pixels) for row in ordered])
            if ordered
            else np.zeros((0, MNIST_SIDE, MNIST_SIDE), np.uint8),
            labels=np.array([row.label for row in ordered], dtype=np.int64),
            predicted=np.array([row.predicted_digit for row in ordered], dtype=np.int64),
            input_hashes=tuple(row.input_hash for row in ordered),
            model_versions=tuple(row.model_version for row in ordered),
        )

    def close(self) -> None:
        self.engine.dispose()


class _Guard:
    """Database errors as StoreUnavailableError with a sentence (no SQL, no password)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> None:
        if isinstance(error, sa.exc.IntegrityError):
            return None  # the caller's to handle
        if isinstance(error, sa.exc.DBAPIError | sa.exc.TimeoutError):
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0][:200]
            raise StoreUnavailableError(f"the feedback store ({self.name}) cannot be used now: {reason}") from error
        return None


def _pixels(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.uint8).reshape(MNIST_SIDE, MNIST_SIDE)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
