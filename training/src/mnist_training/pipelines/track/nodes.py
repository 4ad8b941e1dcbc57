"""What kedro-mlflow does not do by itself: the run's metric curves in its format, and the
registration of a published model version (its whole directory, the serving contract) with the
tags a promotion decides on. kedro-mlflow's hook opens the run, logs the parameters and saves
the Mlflow* datasets of the catalog; with tracking off there is no active run and these nodes
register nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mnist_training.parameters import RegistryParams

logger = logging.getLogger(__name__)

# The folder of the run's artifacts that holds the published version, file for file.
ARTIFACT_PATH = "model"


def metric_curves(history: dict[str, Any], metrics: dict[str, Any], parity: dict[str, Any]) -> dict[str, Any]:
    """Per-epoch loss and accuracies (one step per epoch), then the test figures (clean, per
    digit, each robustness variant) and the ONNX parity, as kedro-mlflow's
    MlflowMetricsHistoryDataset takes them."""
    curves: dict[str, Any] = {
        name: [{"value": float(epoch[name]), "step": epoch["epoch"]} for epoch in history["epochs"]]
        for name in ("loss", "train_accuracy", "val_accuracy")
    }
    curves["test_accuracy"] = {"value": metrics["test_accuracy"], "step": 0}
    for digit, value in metrics["per_class_accuracy"].items():
        curves[f"test_accuracy_digit_{digit}"] = {"value": value, "step": 0}
    for variant, value in metrics["robustness"].items():
        curves[f"robustness_{variant}"] = {"value": value, "step": 0}
    curves["onnx_parity_max_abs_diff"] = {"value": parity["max_abs_diff"], "step": 0}
    return curves


def registration_tags(metadata: dict[str, Any]) -> dict[str, str]:
    """The registered version's tags: what a promotion decides on, from the version's metadata."""
    return {
        "model_version_id": metadata["version"],
        "test_accuracy": f"{metadata['metrics']['test_accuracy']:.6f}",
        "onnx_sha256": metadata["onnx_sha256"],
        "parity_max_abs_diff": f"{metadata['parity_max_abs_diff']:.3g}",
        "git_sha": metadata["git_sha"],
        "data_sha256": metadata["data"].get("sha256", "unknown"),
        "data_source": metadata["data"]["source"],
    }


def create_version(client: MlflowClient, name: str, run: Any, tags: dict[str, str]) -> ModelVersion:
    """Register the run's ``model`` artifacts as a new version of ``name`` (created if new)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="MNIST CNN: model.onnx and its metadata.json (the serving contract)"
        )
    return client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
        run_id=run.info.run_id,
        tags=tags,
        description=f"models/{tags['model_version_id']}",
    )


def register_model_version(published: dict[str, Any], params: RegistryParams) -> dict[str, Any]:
    """Log ``models/<version>/`` as the run's ``model`` artifacts and register them as a new
    version of ``params.model_name``, tagged with what a promotion decides on."""
    run = mlflow.active_run()
    if run is None:
        logger.info("Tracking is off: model version %s is not registered", published["version"])
        return {}
    metadata = published["metadata"]
    tags = registration_tags(metadata)
    mlflow.set_tags({f"mnist.{key}": value for key, value in tags.items()})
    mlflow.log_artifacts(str(Path(published["path"])), artifact_path=ARTIFACT_PATH)  # the version as it is on disk
    registered = create_version(MlflowClient(), params.model_name, run, tags)
    logger.info(
        "Registered %s version %s (model %s, run %s) at %s",
        params.model_name,
        registered.version,
        metadata["version"],
        run.info.run_id,
        mlflow.get_tracking_uri(),
    )
    return {"name": params.model_name, "version": registered.version, "run_id": run.info.run_id}
