"""A Compose deploy's plan, as a value: which images, which model source, what runs now (the
rollback target), the Compose project and the variables every Compose command gets. Made from the
options, the process environment and what git and Compose answer; it changes nothing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mnist_hub import settings as hub
from mnist_hub.commands import compose, git
from mnist_hub.errors import DeployError
from mnist_hub.record import CURRENT, Record, read_record
from mnist_hub.runner import Runner


@dataclass(frozen=True)
class DeployOptions:
    env: str
    force: bool = False
    tag: str = ""
    model: str = ""
    dry_run: bool = False
    timeout: int = 300
    no_rollback: bool = False


@dataclass(frozen=True)
class Plan:
    options: DeployOptions
    repo_root: Path
    state_dir: Path
    repository: str
    tag: str
    build: bool  # no --tag: the commit's images, built unless present
    model_ref: str  # a registry alias or version, or 'folder'
    commit: str
    dirty: bool
    previous: Record
    project: compose.ComposeProject
    # What every Compose command of this deploy gets on top of the process environment.
    variables: Mapping[str, str] = field(default_factory=dict)
    offline: bool = False
    drain_seconds: float = 5

    @property
    def env(self) -> str:
        return self.options.env

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def previous_repository(self) -> str:
        return self.previous.image_repository or self.repository

    @property
    def rollback_possible(self) -> bool:
        return bool(self.previous.tag) and not self.options.no_rollback

    def describe(self) -> list[str]:
        """The dry run's lines."""
        v = self.variables
        images = "build unless present" if self.build else "use or pull"
        models = (
            f"the folder {v['MODELS_PATH']}"
            if self.model_ref == "folder"
            else f"registry {self.model_ref} (checked before anything changes)"
        )
        return [
            f"Plan for {self.env} (dry run, nothing changed):",
            f"  compose:   {' '.join(self.project.argv())}",
            f"  profiles:  {v.get('COMPOSE_PROFILES') or 'none'}",
            f"  images:    {self.repository}/{{backend,frontend}}:{self.tag} ({images})",
            f"  registry:  {v['MLFLOW_IMAGE']} and its database (kept running; started if missing)",
            f"  models:    {models}",
            f"  commit:    {self.commit}{' (with uncommitted changes)' if self.dirty else ''}",
            f"  replaces:  {self.previous.summary()}",
            f"  then:      up -d, wait healthy ({self.options.timeout}s), scripts/test-integration.sh, rollback on "
            "failure",
        ]


def find_compose(runner: Runner, choice: str) -> tuple[str, ...]:
    """The Compose that answers. COMPOSE_CLI=v1 or v2 insists on one (both are tested in CI); by
    default v2 wins when both answer."""
    if choice not in ("v1", "v2", "auto"):
        raise DeployError(f"COMPOSE_CLI must be v1, v2 or auto, not '{choice}'")
    if choice in ("v2", "auto") and runner.run(compose.version(compose.V2)).ok:
        return compose.V2
    if choice == "v2":
        raise DeployError("COMPOSE_CLI=v2 but 'docker compose' does not answer")
    if runner.run(compose.version(compose.V1)).ok:
        return compose.V1
    if choice == "v1":
        raise DeployError("COMPOSE_CLI=v1 but 'docker-compose' does not answer")
    raise DeployError("neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed (scripts/ensure-docker.sh)")


def compose_project(runner: Runner, repo_root: Path, env: str, environ: Mapping[str, str]) -> compose.ComposeProject:
    cli = find_compose(runner, environ.get("COMPOSE_CLI") or "auto")
    return compose.ComposeProject(cli, repo_root, env, environ.get("COMPOSE_PROJECT_NAME") or f"mnist-{env}")


def state_root(environ: Mapping[str, str], repo_root: Path) -> Path:
    """Where every environment's state folder lives (DEPLOY_STATE_DIR, else .deploy)."""
    return Path(environ.get("DEPLOY_STATE_DIR") or repo_root / ".deploy")


def state_dir(environ: Mapping[str, str], repo_root: Path, env: str) -> Path:
    """Where an environment's record, history, lock and pool file live."""
    return state_root(environ, repo_root) / env


def live_pool(state: Path, previous: Record) -> str:
    """The pool nginx sends traffic to. Its pool file is the truth: a deploy rewrites it at the
    switch, so one killed after the switch leaves a record naming the old pool while the file
    names the live one (retiring that pool next would answer 502s)."""
    try:
        text = (state / "nginx-pool" / "upstreams.conf").read_text()
    except OSError:
        text = ""
    named = [pool for pool in ("blue", "green") if f"-pool-{pool}:" in text]
    return named[0] if len(named) == 1 else previous.pool or "blue"


def make_plan(options: DeployOptions, environ: Mapping[str, str], runner: Runner, repo_root: Path) -> Plan:
    env = options.env
    repository = hub.image_repository(environ)
    state = state_dir(environ, repo_root, env)
    offline = bool(environ.get("OFFLINE"))
    variables: dict[str, str] = {
        "IMAGE_REPOSITORY": repository,
        "MODELS_PATH": environ.get("MODELS_PATH") or "./models",
        "TLS_CERT_DIR": environ.get("TLS_CERT_DIR") or "./nginx/certs",
        # Set (even empty) wins over the environment's default.
        "COMPOSE_PROFILES": environ["COMPOSE_PROFILES"]
        if "COMPOSE_PROFILES" in environ
        else hub.default_profiles(env, offline),
    }
    if environ.get("FOLDER_MODELS_PATH"):
        variables["FOLDER_MODELS_PATH"] = environ["FOLDER_MODELS_PATH"]
    # Where the models come from: the registry (staging, production) or the host's folder (dev).
    model_ref = options.model or ("folder" if env == "dev" else env)
    variables.update(hub.model_source_settings(env, model_ref, variables))

    head = runner.run(git.head())
    commit = head.stdout.strip() if head.ok and head.stdout.strip() else "unknown"
    # Uncommitted changes to tracked files: the images are not the commit's, so they get their own tag.
    dirty = commit != "unknown" and runner.run(git.has_changes()).returncode == 1
    variables["GIT_SHA"] = environ.get("GIT_SHA") or commit[:12]
    tag = options.tag
    if not tag:
        tag = variables["GIT_SHA"]
        if dirty:
            tag += "-dirty-" + hashlib.sha256(runner.run(git.diff()).stdout.encode()).hexdigest()[:8]
    variables["IMAGE_TAG"] = tag
    previous = read_record(state / CURRENT)

    # --- the checks that need no engine ---
    models = variables["MODELS_PATH"]
    if (
        model_ref == "folder"
        and not environ.get("MODEL_VERSION")
        and not (_path(repo_root, models) / "CURRENT").is_file()
    ):
        raise DeployError(
            f"no model in {models} (models/CURRENT is missing): run 'make train', set MODELS_PATH, or deploy from "
            "the registry (--model <alias>)"
        )
    if env == "production":
        certs = _path(repo_root, variables["TLS_CERT_DIR"])
        if not (os.access(certs / "tls.crt", os.R_OK) and os.access(certs / "tls.key", os.R_OK)):
            raise DeployError(
                f"no TLS certificate in {variables['TLS_CERT_DIR']} (tls.crt, tls.key): mount real ones, or run "
                "scripts/make-dev-cert.sh"
            )
        # nginx reads the live pool from here; the deploy writes it before nginx starts.
        variables["NGINX_POOL_DIR"] = str(state / "nginx-pool")
        variables["DEPLOY_POOL"] = live_pool(state, previous)
    project = compose_project(runner, repo_root, env, environ)
    variables["MLFLOW_IMAGE"] = hub.mlflow_image(repo_root, environ)
    return Plan(
        options=options,
        repo_root=repo_root,
        state_dir=state,
        repository=repository,
        tag=tag,
        build=not options.tag,
        model_ref=model_ref,
        commit=commit,
        dirty=dirty,
        previous=previous,
        project=project,
        variables=variables,
        offline=offline,
        drain_seconds=float(environ.get("DRAIN_SECONDS") or 5),
    )


def _path(repo_root: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else repo_root / path
