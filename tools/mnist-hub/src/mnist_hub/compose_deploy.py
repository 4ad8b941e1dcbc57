"""Deploy one environment with Docker Compose, verify it, and roll back on failure.

dev and staging are replaced in place. Production runs two pools (blue, green) behind nginx:
each stable replica carries its pool's network alias (backend-pool-<pool>), nginx's pool file
names the live one; a deploy starts the new pool beside the serving one, reloads nginx to send
new requests there while the old workers finish theirs, and retires the old pool. What a
rollback undoes is decided by the steps the deploy reached (``Reached``), never by guesswork.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import replace
from pathlib import Path

from mnist_hub import feedback_database
from mnist_hub import settings as hub
from mnist_hub.canary.weight import WEIGHT_FILE
from mnist_hub.commands import compose, docker, git, host
from mnist_hub.compose_plan import DeployOptions, Plan, make_plan, state_dir
from mnist_hub.engine import Engine
from mnist_hub.errors import DeployError
from mnist_hub.record import (
    CURRENT,
    PREVIOUS,
    DeployLock,
    Record,
    append_history,
    now_utc,
    operator,
    take_lock,
    write_atomically,
    write_record,
)
from mnist_hub.runner import Runner

NGINX = ("nginx", "-c", "/etc/nginx/hub/nginx.conf")
# Inside the sync's throwaway container (`run --rm`): the preflight's download lands nowhere else.
PREFLIGHT_DIR = "/tmp/preflight"  # noqa: S108
POOLED = ("backend", "frontend")


class Reached(enum.Enum):
    """Steps of a rolling deploy that a rollback has to undo."""

    OTHERS_UPDATED = "the other services updated"
    SWITCHED = "nginx switched to the new pool"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def other_pool(pool: str) -> str:
    return "green" if pool == "blue" else "blue"


class ComposeDeploy:
    """Runs a ``Plan`` through ``runner``: lock, images, registry check, start, verify, record,
    and on failure the rollback to the previous record's commit, model and images."""

    def __init__(self, plan: Plan, runner: Runner, environ: dict[str, str], lock: DeployLock | None = None) -> None:
        self.plan, self.runner, self.environ = plan, runner, environ
        # A lock its caller already holds (``deploy_compose`` takes it before reading the record).
        self.held_lock = lock
        self.variables = dict(plan.variables)
        self.engine = Engine(runner, plan.project.project)
        self.lock = DeployLock(plan.state_dir)
        self.reached: set[Reached] = set()
        self.services: list[str] | None = None
        self.registry_version = ""
        self.canary_expected = self.variables.get("CANARY_MODEL_VERSION", environ.get("CANARY_MODEL_VERSION", ""))
        self.old_backends: list[str] = []
        self.old_frontends: list[str] = []
        self.new_pool = ""
        self.started = 0.0

    # --- small helpers ------------------------------------------------------------------------
    @property
    def env(self) -> str:
        return self.plan.env

    @property
    def timeout(self) -> int:
        return self.plan.options.timeout

    def compose_env(self, **overrides: str) -> dict[str, str]:
        return {**self.variables, **overrides}

    def active_services(self) -> list[str]:
        if self.services is None:
            result = self.runner.run(self.plan.project.services(self.compose_env()))
            self.services = compose.active_services(
                self.plan.project, result.stdout, self.variables.get("COMPOSE_PROFILES", "")
            )
        return self.services

    def notify(self, status: str, detail: str) -> None:
        duration = int(self.runner.monotonic() - self.started)
        self.runner.run(host.notify(status, self.env, self.plan.tag, duration, detail))

    # --- the checks before anything changes --------------------------------------------------
    def check_config(self) -> None:
        if not self.runner.run(self.plan.project.check_config(self.compose_env())).ok:
            raise DeployError(f"the merged Compose configuration for {self.env} is invalid (see above)")

    def check_engine(self) -> None:
        if not self.runner.run(docker.info()).ok:
            raise DeployError(
                "no Docker engine answers (is dockerd running? can this user reach /var/run/docker.sock?)"
            )

    def check_rollback_images(self) -> None:
        """A rollback must never build (it would build the failed checkout under the old tag): its
        images are checked before anything changes."""
        if not self.plan.rollback_possible:
            return
        repository, tag = self.plan.previous_repository, self.plan.previous.tag
        if not self.engine.images_present(hub.app_images(repository, tag), self.plan.offline):
            raise DeployError(
                f"the rollback target's images {repository}/{{backend,frontend}}:{tag} are neither here nor in the "
                "registry; "
                "nothing was changed. Restore them (docker pull/load), or deploy with --no-rollback"
            )

    # --- how this host reaches the environment -----------------------------------------------
    def urls(self) -> tuple[str, str]:
        if self.plan.production:
            url = f"https://{self.environ.get('PUBLIC_HOST') or 'localhost'}:{self.environ.get('HTTPS_PORT') or '443'}"
            return url, url
        return (
            f"http://127.0.0.1:{self.environ.get('BACKEND_PORT') or '8000'}",
            f"http://127.0.0.1:{self.environ.get('FRONTEND_PORT') or '8501'}",
        )

    def curl_options(self) -> list[str]:
        """--resolve and, for a self-signed certificate (issuer = subject, its own CA), --cacert."""
        if not self.plan.production:
            return []
        public = f"{self.environ.get('PUBLIC_HOST') or 'localhost'}:{self.environ.get('HTTPS_PORT') or '443'}"
        options = ["--resolve", f"{public}:127.0.0.1"]
        cert = f"{self.variables['TLS_CERT_DIR']}/tls.crt"
        issuer = self.runner.run(host.certificate_field(cert, "issuer")).stdout.strip().partition("=")[2]
        subject = self.runner.run(host.certificate_field(cert, "subject")).stdout.strip().partition("=")[2]
        if issuer and issuer == subject:
            options += ["--cacert", cert]
        return options

    def integration_test(self) -> bool:
        backend, frontend = self.urls()
        args = ["--backend-url", backend, "--frontend-url", frontend, "--timeout", "60"]
        if self.env != "dev" and self.environ.get("API_KEYS_FILE"):
            args += ["--api-key-file", self.environ["API_KEYS_FILE"]]
        if self.plan.production:
            args += [
                *self.curl_options(),
                "--prometheus-url",
                f"http://127.0.0.1:{self.environ.get('PROMETHEUS_PORT') or '9090'}",
            ]
            # The canary's expected version: CANARY_MODEL_VERSION (folder), or what its sync
            # resolved (registry). Unknown (a canary serving the stable version): not checked.
            if self.canary_expected:
                args += ["--canary-version", self.canary_expected]
        return self.runner.run(host.integration_test(args)).ok

    def served_model_version(self) -> str:
        """What the stable backends answer on /ready."""
        result = self.runner.run(host.ready(self.urls()[0], self.curl_options()))
        try:
            return str(json.loads(result.stdout).get("model_version") or "")
        except (ValueError, AttributeError):
            return ""

    # --- images and the registry --------------------------------------------------------------
    def prepare_images(self) -> None:
        plan, env = self.plan, self.compose_env()
        images = hub.app_images(plan.repository, plan.tag)
        if plan.build and self.runner.run(docker.image_present(*images)).ok:
            # A commit's images are immutable: rebuilding would replace a known-good rollback target.
            step(f"Images for {plan.tag} exist: reused, not rebuilt")
        elif plan.build:
            step("Building images")
            if not self.runner.run(plan.project.build(POOLED, env)).ok:
                raise DeployError("building the images failed (see above); nothing was changed")
        elif not self.engine.images_present(images, plan.offline):
            raise DeployError(
                f"images {plan.repository}/{{backend,frontend}}:{plan.tag} are neither here nor in the registry"
            )
        # The tracking server's image changes with MLflow's version only: here, pulled, or built once.
        mlflow_image = self.variables["MLFLOW_IMAGE"]
        if "mlflow" not in self.active_services() or self.runner.run(docker.image_present(mlflow_image)).ok:
            return
        if plan.offline or not self.runner.run(docker.pull(mlflow_image)).ok:
            step(f"Building the tracking server's image {mlflow_image}")
            if not self.runner.run(plan.project.build(("mlflow",), env)).ok:
                raise DeployError("building the tracking server's image failed (see above); nothing was changed")

    def registry_preflight(self) -> bool:
        """The model this environment is to serve must resolve in the registry and pass the sync's
        verification before any app container is replaced: the sync's own check, once, into a
        scratch folder (it publishes nothing; the sidecar does, once the deploy starts it)."""
        project, env = self.plan.project, self.compose_env()
        step(f"Checking the models in the registry ({self.plan.model_ref})")
        self.runner.run(project.up(("postgres", "mlflow"), ("--no-build", "--no-recreate"), env, timeout=self.timeout))
        if not self.service_healthy("mlflow"):
            print(f"the tracking server is not healthy after {self.timeout}s")
            return False
        for service in [s for s in self.active_services() if s.startswith("model-sync")]:
            result = self.runner.run(
                project.run_once(
                    service, ("python", "-m", "mnist_model_sync", "--once"), {"MODEL_DIR": PREFLIGHT_DIR}, env
                )
            )
            if not result.ok:
                print("\n".join(result.stdout.splitlines()[-3:]))
                return False
            said = [line for line in result.stdout.splitlines() if "model-sync: " in line]
            outcome = said[-1].split("model-sync: ", 1)[1] if said else ""
            print(f"  {service}: {outcome}")
            if service == "model-sync":
                found = re.search(r" = version (\d*) ", outcome)
                self.registry_version = found.group(1) if found else ""
            elif service == "model-sync-canary":
                found = re.search(r"\((.*)\)$", outcome)
                self.canary_expected = found.group(1) if found else ""
        return True

    def service_healthy(self, service: str) -> bool:
        """Wait (up to the deploy's timeout) until the service's container reports healthy."""
        project, env = self.plan.project, self.compose_env()
        container = self.runner.run(project.ps_quiet(service, env)).stdout.strip()
        deadline = self.runner.monotonic() + self.timeout
        while not container or self.runner.run(docker.health_status(container)).stdout.strip() != "healthy":
            if self.runner.monotonic() >= deadline:
                return False
            self.runner.sleep(2)
            container = container or self.runner.run(project.ps_quiet(service, env)).stdout.strip()
        return True

    def ensure_feedback_database(self) -> None:
        """Staging and production keep people's corrections in their own database and user on the
        environment's PostgreSQL (dev: SQLite in a volume). Made here, before any app container
        changes, so the backends find them; a failure stops the deploy with nothing changed."""
        if self.env == "dev" or "postgres" not in self.active_services():
            return
        step("Preparing the feedback store (its own database and user on PostgreSQL)")
        name = self.environ.get("FEEDBACK_DB_PASSWORD_FILE", "")
        try:
            sql = feedback_database.ensure_sql(Path(name).read_text().strip() if name else "")
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise DeployError(f"FEEDBACK_DB_PASSWORD_FILE ({name or 'unset'}): {reason}; nothing was changed") from None
        project, env = self.plan.project, self.compose_env()
        self.runner.run(project.up(("postgres",), ("--no-build", "--no-recreate"), env, timeout=self.timeout))
        if not self.service_healthy("postgres"):
            raise DeployError(
                f"PostgreSQL is not healthy after {self.timeout}s (scripts/compose.sh {self.env} logs postgres); "
                "nothing was changed"
            )
        command = replace(project.exec("postgres", feedback_database.PSQL, env), stdin=sql, output="capture-all")
        result = self.runner.run(command)
        if not result.ok:
            said = result.lines()[-1] if result.lines() else "no output"
            raise DeployError(f"the feedback database and user could not be made ({said}); nothing was changed")
        print(f"database {feedback_database.DATABASE} and user {feedback_database.USER} ready")

    # --- production's pools -------------------------------------------------------------------
    def write_pool(self, pool: str) -> None:
        """The upstreams nginx includes, atomically replaced."""
        folder = Path(self.variables["NGINX_POOL_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        template = (self.plan.repo_root / "nginx" / "pool" / "upstreams.conf").read_text()
        text = "".join(line.replace("-pool-blue:", f"-pool-{pool}:", 1) for line in template.splitlines(keepends=True))
        write_atomically(folder / "upstreams.conf", text)
        # The canary's share: written by a canary analysis, none until then (kept across deploys).
        if not (folder / WEIGHT_FILE).is_file():
            write_atomically(folder / WEIGHT_FILE, (self.plan.repo_root / "nginx" / "pool" / WEIGHT_FILE).read_text())

    def reload_edge(self) -> bool:
        """Test the configuration first: a broken one must not replace a working one."""
        project, env = self.plan.project, self.compose_env()
        if not self.runner.run(project.exec("nginx", (*NGINX, "-t", "-q"), env)).ok:
            return False
        return self.runner.run(replace(project.exec("nginx", (*NGINX, "-s", "reload"), env), output="quiet")).ok

    def switch_pool(self, pool: str) -> bool:
        self.write_pool(pool)
        if not self.reload_edge():
            return False
        print(f"nginx now sends new requests to the {pool} pool", flush=True)
        return True

    def update_other_services(self, tag: str, pool: str) -> bool:
        """Every service but the pooled ones and the edge, with this checkout's configuration.
        Compose recreates what the deploy changes (the canary and the model sync run the new tag);
        the rest keeps running. MLflow and its database are only started if missing. The edge is
        never recreated here (that would drop every open connection): its configuration arrives
        through reload_edge; a new nginx image, port or mount needs `scripts/compose.sh production
        up -d --force-recreate nginx` (docs/deploy.md: zero-downtime deploys)."""
        kept = ["nginx"] + [s for s in self.active_services() if s in hub.STATEFUL_SERVICES]
        others = [s for s in self.active_services() if s not in hub.STATEFUL_SERVICES and s not in (*POOLED, "nginx")]
        env = self.compose_env(IMAGE_TAG=tag, DEPLOY_POOL=pool)
        project = self.plan.project
        if not self.runner.run(project.up(others, ("--no-deps", "--no-build"), env, self.timeout)).ok:
            return False
        return self.runner.run(project.up(kept, ("--no-deps", "--no-build", "--no-recreate"), env, self.timeout)).ok

    def rolling_deploy(self) -> bool:
        replicas = int(self.environ.get("BACKEND_REPLICAS") or 3)
        live = self.variables["DEPLOY_POOL"]
        self.new_pool = other_pool(live)
        print(
            f"serving pool: {live} ({len(self.old_backends)} backends); starting the {self.new_pool} pool at "
            f"{self.plan.tag} beside it"
        )
        scale = (
            "--scale",
            f"backend={len(self.old_backends) + replicas}",
            "--scale",
            f"frontend={len(self.old_frontends) + 1}",
        )
        env = self.compose_env(DEPLOY_POOL=self.new_pool)
        if not self.runner.run(
            self.plan.project.up(POOLED, ("--no-deps", "--no-recreate", "--no-build", *scale), env, self.timeout)
        ).ok:
            return False
        if not self.engine.wait_healthy(self.timeout):
            return False
        self.reached.add(Reached.OTHERS_UPDATED)
        if not self.update_other_services(self.plan.tag, self.new_pool) or not self.engine.wait_healthy(self.timeout):
            return False
        if not self.engine.reload_monitoring():
            return False
        self.reached.add(Reached.SWITCHED)
        return self.switch_pool(self.new_pool) and self.integration_test()

    def rolling_rollback(self) -> bool:
        """The previous pool takes the traffic back; the new pool's containers go."""
        live = self.variables["DEPLOY_POOL"]
        if Reached.SWITCHED in self.reached:
            if not self.switch_pool(live):
                return False
            self.runner.sleep(self.plan.drain_seconds)
        # Whatever this deploy started, in any state: a crash-looping or never-started one included.
        self.engine.retire(
            self.engine.started_since("backend", self.old_backends)
            + self.engine.started_since("frontend", self.old_frontends)
        )
        # The other services kept the previous configuration unless this deploy had got to them.
        if Reached.OTHERS_UPDATED in self.reached and not self.update_other_services(self.plan.previous.tag, live):
            return False
        if not self.reload_edge():  # the restored checkout's nginx.conf
            return False
        if not self.engine.wait_healthy(self.timeout):
            return False
        if Reached.OTHERS_UPDATED in self.reached and not self.engine.reload_monitoring():
            return False
        return self.integration_test()

    # --- dev, staging (and a production with nothing running): replace in place -------------
    def in_place_deploy(self, tag: str, *options: str) -> bool:
        if self.plan.production:
            self.write_pool(self.variables["DEPLOY_POOL"])
        services = [s for s in self.active_services() if s not in hub.STATEFUL_SERVICES]
        stateful = [s for s in self.active_services() if s in hub.STATEFUL_SERVICES]
        env, project = self.compose_env(IMAGE_TAG=tag), self.plan.project
        # The registry keeps running through app deploys and rollbacks (started if missing).
        if (
            stateful
            and not self.runner.run(project.up(stateful, ("--no-build", "--no-recreate"), env, self.timeout)).ok
        ):
            return False
        if not self.runner.run(
            project.up(services, ("--force-recreate", "--remove-orphans", *options), env, self.timeout)
        ).ok:
            return False
        if not self.engine.wait_healthy(self.timeout):
            return False
        if self.plan.production and not self.reload_edge():
            return False
        return self.integration_test()

    # --- rollback: the previous record's commit, model and images ----------------------------
    def restore_current(self) -> None:
        """models/CURRENT as the previous deployment had it, by the model store's one writer (from
        this deploy's checkout: called before the checkout moves back, an older commit may predate it)."""
        previous = self.plan.previous
        if previous.model_source not in ("", "folder") or not previous.model_version:
            return
        models = Path(self.variables.get("FOLDER_MODELS_PATH") or self.variables["MODELS_PATH"])
        models = models if models.is_absolute() else self.plan.repo_root / models
        if not (models / previous.model_version).is_dir():
            return
        try:
            now = (models / "CURRENT").read_text().strip()
        except OSError:
            now = ""
        if now == previous.model_version:
            return
        if self.runner.run(host.set_current_model(self.plan.repo_root, str(models), previous.model_version)).ok:
            print(f"models/CURRENT restored: {now or 'none'} -> {previous.model_version}")
        else:
            print(f"WARNING: models/CURRENT is NOT restored (still {now or 'none'}): the rollback serves it")

    def restore_commit(self) -> None:
        commit, previous = self.plan.commit, self.plan.previous.commit
        if not previous or previous == "unknown" or previous == commit:
            return
        if self.plan.dirty:
            print(
                f"WARNING: the checkout has uncommitted changes: the configuration of {previous[:12]} is NOT restored"
            )
            return
        if not self.runner.run(git.checkout_detached(previous)).ok:
            print(f"WARNING: could not check out {previous[:12]}: its configuration is NOT restored")
            return
        print(f"checkout restored to {previous[:12]} (Compose files, nginx, monitoring as they were deployed)")

    def restore_model(self) -> None:
        previous = self.plan.previous
        if previous.model_source and previous.model_source != "folder":
            # The registry: the version the previous deployment served, pinned (an alias may have
            # moved since); the next deploy follows the alias again.
            ref = previous.model_registry_version or previous.model_source
            self.variables.update(hub.model_source_settings(self.env, ref, self.variables))
            self.registry_version = previous.model_registry_version
            print(f"models: registry version {ref} ({previous.model_version}), as before")
            return
        self.variables.update(hub.model_source_settings(self.env, "folder", self.variables))

    def record(self, result: str, model: str) -> None:
        """The new record (success) and one history line (any result)."""
        plan = self.plan
        record = Record(
            tag=plan.tag,
            commit=plan.commit,
            dirty=str(plan.dirty).lower(),
            image_repository=plan.repository,
            model_version=model,
            model_source=plan.model_ref,
            model_registry_version=self.registry_version,
            pool=self.new_pool or self.variables.get("DEPLOY_POOL", ""),
            deployed_at=now_utc(),
            result=result,
            by=operator(),
        )
        append_history(plan.state_dir, record)
        if result == "success":
            current = plan.state_dir / CURRENT
            if current.is_file():
                write_atomically(plan.state_dir / PREVIOUS, current.read_text())
            write_record(current, record)

    # --- the deploy -------------------------------------------------------------------------
    def run(self) -> int:
        """The deploy, under the environment's lock: 0 deployed, 1 failed (rolled back or not)."""
        if self.held_lock is not None:
            return self._deploy()
        self.lock = take_lock(
            self.plan.state_dir, self.env, f"deploying {self.plan.tag}", self.environ.get("DEPLOY_LOCK_FD")
        )
        try:
            return self._deploy()
        finally:
            self.lock.release()

    def _deploy(self) -> int:
        plan = self.plan
        self.check_engine()
        self.started = self.runner.monotonic()
        self.check_rollback_images()
        self.engine.remember_restarts()
        step(
            f"Deploying {self.env}: {plan.repository}/{{backend,frontend}}:{plan.tag} (replacing "
            f"{plan.previous.summary()})"
        )
        print(f"compose: {' '.join(plan.project.argv())}")
        self.prepare_images()
        if plan.model_ref != "folder" and not self.registry_preflight():
            self.notify(
                "failure", f"the registry cannot give {self.env} its model ({plan.model_ref}); nothing was changed"
            )
            raise DeployError(
                f"the registry cannot give {self.env} its model ({plan.model_ref}; see above): promote a version "
                f"(scripts/promote-model.sh <version> --to {plan.model_ref}), or deploy with --model folder. "
                "Nothing was changed."
            )

        self.ensure_feedback_database()

        step(f"Starting {self.env}")
        rolling = False
        if plan.production:
            live = self.variables["DEPLOY_POOL"]
            self.old_backends = self.engine.pool_ids("backend", live)
            self.old_frontends = self.engine.pool_ids("frontend", live)
            rolling = bool(self.old_backends)
            # Containers outside the live pool are what an interrupted deploy left: they would
            # count towards the new pool's scale, so they go first (nginx sends them nothing).
            leftovers = self.engine.started_since("backend", self.old_backends) + self.engine.started_since(
                "frontend", self.old_frontends
            )
            if rolling and leftovers:
                print(
                    f"removing {len(leftovers)} containers outside the live {live} pool (left by an interrupted deploy)"
                )
                self.engine.retire(leftovers)
        if rolling:
            deployed = self.rolling_deploy()
            if deployed:
                self.runner.sleep(plan.drain_seconds)  # the old workers' requests in flight finish on the old pool
                self.engine.retire(self.old_backends + self.old_frontends)
                print(
                    f"retired the {self.variables['DEPLOY_POOL']} pool ({len(self.old_backends)} backends, "
                    f"{len(self.old_frontends)} frontends)"
                )
        else:
            deployed = self.in_place_deploy(plan.tag)
        if deployed:
            return self.succeeded()
        return self.roll_back(rolling)

    def succeeded(self) -> int:
        model = self.served_model_version()
        self.record("success", model)
        self.notify("success", f"deployed and verified; model {model or 'unknown'}; commit {self.plan.commit[:12]}")
        duration = int(self.runner.monotonic() - self.started)
        step(f"Deployed {self.env} at {self.plan.tag} (model {model or 'unknown'}) in {duration} s")
        backend, frontend = self.urls()
        ports = {key: self.environ.get(key) for key in ("PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT")}
        if self.plan.production:
            print(f"  app:          {backend}/  (API under /api/v1, HTTP redirects)")
            print(
                f"  Prometheus:   http://127.0.0.1:{ports['PROMETHEUS_PORT'] or 9090}   Alertmanager: "
                f"http://127.0.0.1:{ports['ALERTMANAGER_PORT'] or 9093}"
            )
        else:
            print(f"  frontend:     {frontend}")
            print(f"  backend API:  {backend}/docs")
            if self.env == "staging":
                print(f"  Prometheus:   http://127.0.0.1:{ports['PROMETHEUS_PORT'] or 9090}")
        if "grafana" in hub.profiles_list(self.variables.get("COMPOSE_PROFILES", "")):
            print(f"  Grafana:      http://127.0.0.1:{ports['GRAFANA_PORT'] or 3000}")
        return 0

    def roll_back(self, rolling: bool) -> int:
        plan, previous = self.plan, self.plan.previous
        step(f"Deploying {plan.tag} failed")
        self.record("failed", "")
        if not plan.rollback_possible:
            self.notify("failure", "failed; no previous deployment to roll back to")
            print(
                "Nothing to roll back to (no previous deployment recorded, or --no-rollback). Inspect with: "
                f"scripts/compose.sh {self.env} logs"
            )
            return 1
        step(f"Rolling back {self.env} to {previous.summary()}")
        self.restore_current()
        self.restore_commit()
        self.restore_model()
        self.variables.update(IMAGE_REPOSITORY=plan.previous_repository, IMAGE_TAG=previous.tag)
        self.services = None  # the restored checkout and model source may start other services
        restored = self.rolling_rollback() if rolling else self.in_place_deploy(previous.tag, "--no-build")
        model = self.served_model_version()
        what = f"{previous.tag}, commit {previous.commit[:12]}, model {model or 'unknown'}"
        if restored and (not previous.model_version or model == previous.model_version):
            append_history(
                plan.state_dir,
                Record(
                    tag=previous.tag,
                    commit=previous.commit,
                    model_version=model,
                    result="rolled-back",
                    deployed_at=now_utc(),
                ),
            )
            self.notify("rolled-back", f"{plan.tag} failed its checks; restored and verified: {what}")
            print(
                f"Rolled back to {previous.tag}: it answers again ({what}). The failed tag {plan.tag} was not recorded."
            )
        else:
            if restored:
                print(f"the restored deployment serves model {model or 'unknown'}, not {previous.model_version}")
            self.notify("failure", f"{plan.tag} failed, and the rollback to {previous.tag} failed too")
            print(f"Rollback to {previous.tag} FAILED as well. Inspect with: scripts/compose.sh {self.env} logs")
        return 1


def deploy_compose(options: DeployOptions, environ: dict[str, str], runner: Runner, repo_root: Path) -> int:
    """Plan and run a Compose deploy. The lock comes first: what runs now (the record, the pool
    file) is read under it, so two deploys never plan from the same state."""
    lock = None
    if not options.dry_run:
        state = state_dir(environ, repo_root, options.env)
        lock = take_lock(
            state, options.env, f"deploying {options.tag or 'the checkout'}", environ.get("DEPLOY_LOCK_FD")
        )
    try:
        plan = make_plan(options, environ, runner, repo_root)
        deployment = ComposeDeploy(plan, runner, environ, lock)
        deployment.check_config()
        if plan.env != "dev" and plan.offline:
            print("note: OFFLINE=1: Grafana is skipped (no Debian package); its dashboards stay in monitoring/grafana")
        if lock is None:
            print("\n".join(plan.describe()))
            return 0
        lock.describe(f"deploying {plan.tag}")
        return deployment.run()
    finally:
        if lock is not None:
            lock.release()
