"""A version's id: ``20261123T120501Z-a1b2c3`` (UTC time of publishing, six random hex digits).

Sortable by time, so the newest version is the last name in ``models/``; unique by the
suffix, so two runs in one second never collide. The metadata schema's ``version`` pattern
is this one (a test holds them together).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

VERSION_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$"
_VERSION_ID = re.compile(VERSION_ID_PATTERN)


def new_version_id(now: datetime | None = None) -> str:
    """A fresh id for a version published ``now`` (default: this instant)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_version_id(name: str) -> bool:
    return _VERSION_ID.fullmatch(name) is not None
