"""The CPU and memory limits of the container this process runs in, read from its cgroup.

Exported next to the process's own usage, so "a replica above 80 % of its memory limit" is a
ratio Prometheus can compute and alert on. Without a limit (a laptop, `make serve`) nothing
is exported and those alerts stay quiet. cgroup v2 and v1 layouts are both read.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 says "no limit" with a page-rounded maximum integer.
_UNLIMITED = 1 << 60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int | None:
    text = _read(root / "memory.max") or _read(root / "memory" / "memory.limit_in_bytes")
    if not text or text == "max":
        return None
    limit = int(text)
    return limit if limit < _UNLIMITED else None


def cpu_limit_cores(root: Path = CGROUP_ROOT) -> float | None:
    v2 = _read(root / "cpu.max")  # "<quota> <period>" or "max <period>"
    if v2:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period)
    quota_text = _read(root / "cpu" / "cpu.cfs_quota_us")
    period_text = _read(root / "cpu" / "cpu.cfs_period_us")
    if not quota_text or not period_text or int(quota_text) <= 0:
        return None
    return int(quota_text) / int(period_text)
