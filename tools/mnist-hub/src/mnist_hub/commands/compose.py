"""Compose commands for one environment's project, under Compose v2 (`docker compose`) or v1
(`docker-compose --compatibility`, so that `deploy:` means the same as under v2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mnist_hub.runner import Command, Output, command

V2 = ("docker", "compose")
V1 = ("docker-compose", "--compatibility")


def version(cli: Sequence[str]) -> Command:
    return command(*cli, "version", output="quiet")


@dataclass(frozen=True)
class ComposeProject:
    """The Compose command line for one environment: its files and its project name."""

    cli: tuple[str, ...]
    repo_root: Path
    env: str
    project: str

    @property
    def is_v1(self) -> bool:
        return self.cli[0] == "docker-compose"

    def argv(self, *args: str) -> tuple[str, ...]:
        root = str(self.repo_root)
        files = ("-f", f"{root}/docker-compose.yml", "-f", f"{root}/docker-compose.{self.env}.yml")
        return (*self.cli, "--project-directory", root, "-p", self.project, *files, *args)

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None, output: Output = "show"
    ) -> Command:
        return command(*self.argv(*args), env=env, timeout=timeout, output=output)

    # --- the steps ---------------------------------------------------------------------------
    def check_config(self, env: Mapping[str, str]) -> Command:
        return self("config", "-q", env=env)

    def services(self, env: Mapping[str, str]) -> Command:
        """v2's `config --services` leaves out inactive profiles' services; v1 lists all of them,
        so its whole `config` is read (``active_services`` filters it)."""
        return (
            self("config", env=env, output="capture")
            if self.is_v1
            else self("config", "--services", env=env, output="capture")
        )

    def build(self, services: Sequence[str], env: Mapping[str, str]) -> Command:
        return self("build", *services, env=env)

    def up(self, services: Sequence[str], options: Sequence[str], env: Mapping[str, str], timeout: float) -> Command:
        return self("up", "-d", *options, *services, env=env, timeout=timeout)

    def ps_quiet(self, service: str, env: Mapping[str, str]) -> Command:
        return self("ps", "-q", service, env=env, output="capture")

    def run_once(
        self, service: str, argv: Sequence[str], extra_env: Mapping[str, str], env: Mapping[str, str]
    ) -> Command:
        flags = [arg for key, value in extra_env.items() for arg in ("-e", f"{key}={value}")]
        return self("run", "--rm", "--no-deps", "-T", *flags, service, *argv, env=env, output="capture-all")

    def exec(self, service: str, argv: Sequence[str], env: Mapping[str, str]) -> Command:
        return self("exec", "-T", service, *argv, env=env)


def active_services(project: ComposeProject, config_output: str, profiles: str) -> list[str]:
    """The services `up` starts with ``profiles`` active, from ``services``' output."""
    if not project.is_v1:
        return [line.strip() for line in config_output.splitlines() if line.strip()]
    active = {p for p in profiles.split(",") if p}
    return [name for name, own in _v1_service_profiles(config_output) if not own or active & set(own)]


def _v1_service_profiles(config: str) -> list[tuple[str, list[str]]]:
    """(service, its profiles) from v1's normalized `config` output (PyYAML's block style: two
    spaces a level, list items at their key's indent or deeper); read without a YAML library."""
    services: list[tuple[str, list[str]]] = []
    in_services = in_profiles = False
    for line in config.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if indent == 0:
            in_services, in_profiles = text == "services:", False
            continue
        if not in_services:
            continue
        if indent == 2 and text.endswith(":"):
            services.append((text[:-1].strip("'\""), []))
            in_profiles = False
        elif in_profiles and text.startswith("- ") and services:
            services[-1][1].append(text[2:].strip("'\""))
        elif indent == 4:
            in_profiles = text == "profiles:"
            if text.startswith("profiles: [") and services:  # flow style, should it appear
                services[-1][1].extend(p.strip(" '\"") for p in text[len("profiles: [") : -1].split(",") if p.strip())
    return services
