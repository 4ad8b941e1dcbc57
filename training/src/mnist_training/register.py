"""Register a version that is already published (``models/<version>/``: trained before tracking,
with TRACKING=off, or downloaded from CI's artifacts) in the MLflow registry, exactly as a tracked
training run registers it: a run holding the folder as its ``model`` artifacts, a new version of
``mnist-cnn`` with the same tags. A version id that is registered already is not registered twice.
The registry is ``MLFLOW_TRACKING_URI`` (required, see ``registry_client``).

    python -m mnist_training.register models/<version> [--name mnist-cnn] [--experiment mnist-cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mnist_training.pipelines.track.nodes import (
    ARTIFACT_PATH,
    EXPERIMENT_KIND_TAG,
    TRAINING_EXPERIMENT_KIND,
    create_version,
    registration_tags,
    version_description,
)
from mnist_training.registry_client import RegistryNotConfiguredError, registry_client


def register_folder(client: MlflowClient, folder: Path, name: str, experiment: str) -> tuple[str, bool]:
    """The registry version holding ``folder`` and whether it was created now."""
    metadata = json.loads((folder / "metadata.json").read_text())
    if metadata.get("version") != folder.name:
        raise ValueError(f"{folder}/metadata.json names version {metadata.get('version')!r}, not {folder.name!r}")
    tags = registration_tags(metadata)
    existing = client.search_model_versions(f"name='{name}' and tag.model_version_id='{folder.name}'")
    if existing:
        return existing[0].version, False
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(
        experiment_id,
        tags={f"mnist.{key}": value for key, value in tags.items()},
        run_name=f"register {folder.name}",
    )
    client.log_artifacts(run.info.run_id, str(folder), ARTIFACT_PATH)
    client.set_terminated(run.info.run_id)
    if not found:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND)
    return create_version(client, name, run, tags, version_description(folder)).version, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_training.register", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a published version: models/<version>/")
    parser.add_argument("--name", default="mnist-cnn", help="the registered model (default mnist-cnn)")
    parser.add_argument("--experiment", default="mnist-cnn", help="the experiment of the registering run")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if not (folder / "metadata.json").is_file() or not (folder / "model.onnx").is_file():
        print(
            f"error: {args.folder} is not a published version (model.onnx and metadata.json expected)", file=sys.stderr
        )
        return 2
    try:
        client = registry_client()
    except RegistryNotConfiguredError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        version, created = register_folder(client, folder, args.name, args.experiment)
    except (ValueError, KeyError, json.JSONDecodeError) as error:
        print(f"error: {args.folder}: {error}", file=sys.stderr)
        return 2
    except MlflowException as error:
        print(f"error: the registry at {client.tracking_uri} refused: {error.message}", file=sys.stderr)
        return 1
    state = "registered as" if created else "was already"
    print(f"{folder.name} {state} {args.name} version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
