"""The container's limits, read from cgroup v2 and v1 layouts (fake trees with the kernel's formats)."""

from __future__ import annotations

import pytest

from mnist_backend.metrics import ServiceMetrics
from mnist_backend.resource_limits import cpu_limit_cores, memory_limit_bytes


@pytest.mark.parametrize(
    ("files", "memory", "cpu"),
    [
        ({"memory.max": "536870912\n", "cpu.max": "100000 100000\n"}, 536870912, 1.0),  # v2, Compose's limits
        ({"memory.max": "max\n", "cpu.max": "max 100000\n"}, None, None),  # v2 without limits
        (
            {
                "memory/memory.limit_in_bytes": "268435456",
                "cpu/cpu.cfs_quota_us": "50000",
                "cpu/cpu.cfs_period_us": "100000",
            },
            268435456,
            0.5,
        ),  # v1
        (
            {
                "memory/memory.limit_in_bytes": "9223372036854771712",
                "cpu/cpu.cfs_quota_us": "-1",
                "cpu/cpu.cfs_period_us": "100000",
            },
            None,
            None,
        ),  # v1 without limits
        ({}, None, None),  # no cgroup files at all (not Linux, or not mounted)
    ],
)
def test_limits_are_read_from_either_cgroup_layout(tmp_path, files, memory, cpu):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert memory_limit_bytes(tmp_path) == memory
    assert cpu_limit_cores(tmp_path) == cpu


def test_limits_and_process_usage_are_exported_only_when_there_is_a_limit():
    limited, unlimited = ServiceMetrics(), ServiceMetrics()
    limited.set_resource_limits(512 * 1024 * 1024, 1.0)
    unlimited.set_resource_limits(None, None)
    text = limited.exposition()[0].decode()
    assert "mnist_container_memory_limit_bytes 5.36870912e+08" in text
    assert "mnist_container_cpu_limit_cores 1.0" in text
    bare = unlimited.exposition()[0].decode()
    assert "mnist_container_memory_limit_bytes" not in bare and "mnist_container_cpu_limit_cores" not in bare
    rss = next(line for line in bare.splitlines() if line.startswith("process_resident_memory_bytes "))
    assert float(rss.split()[1]) > 10 * 1024 * 1024  # this very process, tens of MB
    assert "process_cpu_seconds_total" in bare and "process_open_fds" in bare
