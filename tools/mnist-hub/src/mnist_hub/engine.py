"""What a deploy asks of the Docker engine, built on ``commands.docker``: the project's containers,
the health wait, the pools, graceful retirement, and the monitoring's configuration reloads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mnist_hub.commands import docker
from mnist_hub.runner import Runner


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    state: str
    health: str
    restarts: int

    @classmethod
    def parse(cls, line: str) -> ContainerState:
        id_, name, state, health, restarts = line.split()
        return cls(id_, name.lstrip("/"), state, health, int(restarts) if restarts.isdigit() else 0)


# Monitoring watches a deploy instead of restarting during it: Prometheus keeps its scrapes and
# alert state, Alertmanager its notification groups, blackbox-exporter its probes. Each re-reads
# this checkout's configuration folder on SIGHUP and reports the outcome in its own metrics; one
# that rejects the configuration keeps the previous one running, and the deploy fails (rolls back).
MONITORING_RELOADS = (
    ("prometheus", 9090, "prometheus"),
    ("alertmanager", 9093, "alertmanager"),
    ("blackbox-exporter", 9115, "blackbox_exporter"),
)
RELOAD_WAIT_S = 30
# A container whose last reload failed (the deploy being rolled back brought a configuration it
# rejected) says "failed" until the new reload succeeds: that only counts after this long.
STALE_FAILURE_S = 5


def reload_state(metrics: str, prefix: str, sent: float) -> str:
    """ok (a reload at or after ``sent`` succeeded), failed (the last reload failed), pending, or
    missing (no such metric), from a Prometheus text exposition."""
    successful = at = None
    for line in metrics.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0] == f"{prefix}_config_last_reload_successful":
            successful = parts[1]
        elif parts[0] == f"{prefix}_config_last_reload_success_timestamp_seconds":
            at = parts[1]
    if successful is None:
        return "missing"
    if float(successful) == 0:
        return "failed"
    return "ok" if at is not None and float(at) >= sent else "pending"


class Engine:
    """The containers of one Compose project, seen and changed through ``runner``."""

    def __init__(self, runner: Runner, project: str) -> None:
        self.runner, self.project = runner, project
        self.restarts_before: dict[str, int] = {}

    def ids(self, service: str | None = None) -> list[str]:
        return self.runner.run(docker.project_containers(self.project, service)).lines()

    def states(self, ids: Sequence[str]) -> list[ContainerState]:
        if not ids:
            return []
        return [
            ContainerState.parse(line)
            for line in self.runner.run(docker.container_states(ids)).lines()
            if len(line.split()) == 5
        ]

    def remember_restarts(self) -> None:
        """Restart counts now: the health wait judges only restarts that happen during this deploy."""
        self.restarts_before = {s.id: s.restarts for s in self.states(self.ids())}

    def images_present(self, images: Iterable[str], offline: bool) -> bool:
        """Every image here, or pulled now (never pulled when offline)."""
        for image in images:
            if self.runner.run(docker.image_present(image)).ok:
                continue
            if offline:
                return False
            print(f"pulling {image}", flush=True)
            if not self.runner.run(docker.pull(image)).ok:
                return False
        return True

    def wait_healthy(self, timeout: int) -> bool:
        """Until every container of the project runs and is healthy (or has no healthcheck). Fails
        at once on a container that exited, restarted during this deploy (or is restarting), or is
        unhealthy; its last log lines are shown."""
        start = self.runner.monotonic()
        deadline = start + timeout
        while True:
            ids = self.ids()
            if not ids:
                print(f"no containers are running for the project {self.project}", flush=True)
                return False
            bad, pending = [], []
            for s in self.states(ids):
                restarts = s.restarts - self.restarts_before.get(s.id, 0)
                if s.state in ("exited", "dead", "restarting") or s.health == "unhealthy" or restarts > 0:
                    bad.append(
                        (
                            s.name,
                            f"{s.name} ({s.state}, health {s.health}, restarted {restarts} times during this deploy)",
                        )
                    )
                elif s.state != "running" or s.health not in ("healthy", "none"):
                    pending.append(f"{s.name} ({s.state}, {s.health})")
            if bad:
                for _, line in bad:
                    print(f"failed: {line}")
                for name, _ in bad:
                    for log_line in self.runner.run(docker.logs(name, 15)).stdout.splitlines():
                        print(f"  {name} | {log_line}")
                return False
            if not pending:
                print(
                    f"all {len(ids)} containers healthy (waited {int(self.runner.monotonic() - start)} s)", flush=True
                )
                return True
            if self.runner.monotonic() >= deadline:
                print(f"not healthy after {timeout}s: {' '.join(pending)}", flush=True)
                return False
            self.runner.sleep(2)

    def pool_ids(self, service: str, pool: str) -> list[str]:
        """The containers of ``service`` carrying the network alias of ``pool``."""
        alias = f"{service}-pool-{pool}"
        return [i for i in self.ids(service) if alias in self.runner.run(docker.network_aliases(i)).stdout.split()]

    def started_since(self, service: str, old: Sequence[str]) -> list[str]:
        """The containers of ``service`` that are not in ``old``."""
        return [i for i in self.ids(service) if i not in old]

    def retire(self, ids: Sequence[str]) -> None:
        """Stop gracefully (requests in flight finish), then remove."""
        if ids:
            self.runner.run(docker.stop(ids))
            self.runner.run(docker.remove(ids))

    def reload_monitoring(self) -> bool:
        reloaded: list[str] = []
        for service, port, prefix in MONITORING_RELOADS:
            for container in self.ids(service):
                if not self._reload(service, container, port, prefix):
                    return False
                if service not in reloaded:
                    reloaded.append(service)
        if reloaded:
            print(f"reloaded the configuration of {' '.join(reloaded)} (kept running)", flush=True)
        return True

    def _reload(self, service: str, container: str, port: int, prefix: str) -> bool:
        sent = self.runner.wall_clock()
        restarts = self.runner.run(docker.restart_count(container)).stdout.strip()
        was = self._reload_state(container, port, prefix, sent)
        if not self.runner.run(docker.signal_reload(container)).ok:
            print(f"could not signal {service} to reload its configuration")
            return False
        while True:
            state = self._reload_state(container, port, prefix, sent)
            waited = self.runner.wall_clock() - sent
            still_stale = state == "failed" and was == "failed" and waited < STALE_FAILURE_S
            if not (state == "pending" or still_stale) or waited >= RELOAD_WAIT_S:
                break
            self.runner.sleep(0.5)
        # A process that died of the signal and was restarted would report its start-up load as ok.
        if self.runner.run(docker.restart_count(container)).stdout.strip() != restarts:
            print(f"{service} restarted instead of reloading its configuration")
            return False
        if state == "ok":
            return True
        if state == "failed":
            print(f"{service} rejected this checkout's configuration (it keeps running the previous one); its log:")
            for line in self.runner.run(docker.logs(container, 5)).stdout.splitlines():
                print(f"    {line}")
        elif state == "pending":
            print(f"{service} did not report a configuration reload within {RELOAD_WAIT_S} s of SIGHUP")
        else:
            print(f"{service}'s metrics on :{port} have no {prefix}_config_last_reload_successful")
        return False

    def _reload_state(self, container: str, port: int, prefix: str, sent: float) -> str:
        return reload_state(self.runner.run(docker.metrics(container, port)).stdout, prefix, sent)
