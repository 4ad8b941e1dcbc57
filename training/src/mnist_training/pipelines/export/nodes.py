"""Export to ONNX, prove parity with PyTorch, and publish an immutable model version."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess  # nosec B404
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from matplotlib.figure import Figure
from torch import nn

from mnist_contract.metadata import SCHEMA_VERSION
from mnist_contract.model_store import publish_version
from mnist_training.mlflow_model import mlflow_model_files
from mnist_training.model import INPUT_SHAPE
from mnist_training.model_card import MODEL_CARD_FILENAME, render_model_card
from mnist_training.parameters import ExportParams, TrainParams
from mnist_training.pipelines.train.nodes import normalized_tensor

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class OnnxParityError(RuntimeError):
    """The exported graph does not compute what the PyTorch model computes."""


def export_to_onnx(model: nn.Module, params: ExportParams) -> bytes:
    """Serialized ONNX with a dynamic batch axis: input ``image [N,1,28,28]``, output ``logits [N,10]``."""
    model = model.cpu().eval()
    example = torch.zeros((2, *INPUT_SHAPE), dtype=torch.float32)
    program = torch.onnx.export(
        model,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=params.opset_version,
        dynamo=True,
        verbose=False,
    )
    if program is None:  # torch returns None only for the legacy (non-dynamo) exporter
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    return program.model_proto.SerializeToString()


def onnx_logits(onnx_model: bytes, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    chunks = [
        session.run([OUTPUT_NAME], {INPUT_NAME: inputs[start : start + batch_size]})[0]
        for start in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(chunks)


@torch.no_grad()
def check_onnx_parity(
    model: nn.Module,
    onnx_model: bytes,
    test: dict[str, np.ndarray],
    normalization: dict[str, float],
    params: ExportParams,
) -> dict[str, Any]:
    """Run both on the whole test split; raise unless every argmax agrees and max |diff| <= tolerance."""
    tolerance = params.parity_tolerance
    inputs = normalized_tensor(test["images"], normalization)
    expected = torch.cat([model.eval()(chunk) for chunk in inputs.split(512)]).numpy()
    actual = onnx_logits(onnx_model, inputs.numpy())
    max_abs_diff = float(np.abs(expected - actual).max())
    mismatches = int((expected.argmax(1) != actual.argmax(1)).sum())
    report = {
        "n_images": len(inputs),
        "max_abs_diff": max_abs_diff,
        "argmax_mismatches": mismatches,
        "tolerance": tolerance,
    }
    if mismatches or not max_abs_diff <= tolerance:
        raise OnnxParityError(
            f"ONNX export differs from PyTorch on {len(inputs)} test images: "
            f"max |diff| {max_abs_diff:.3g} (allowed {tolerance:g}), {mismatches} argmax mismatches"
        )
    logger.info("ONNX parity on %d test images: max |diff| %.3g, no argmax mismatch", len(inputs), max_abs_diff)
    return report


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def git_sha() -> str:
    """The commit the model was trained from: ``GIT_SHA`` (image builds) or ``git``, else unknown."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    try:
        # bandit B603/B607: a fixed argument list, no shell; git is whichever the PATH names.
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5)  # nosec B603 B607
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_metadata(
    version: str,
    onnx_model: bytes,
    parity: dict[str, Any],
    metrics: dict[str, Any],
    normalization: dict[str, float],
    data_description: dict[str, Any],
    train_params: TrainParams,
    opset_version: int,
) -> dict[str, Any]:
    """``metadata.json`` as the model contract in docs/architecture.md describes it."""
    import onnx
    import torchvision

    return {
        "schema_version": SCHEMA_VERSION,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "framework": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "opset": opset_version,
            "python": platform.python_version(),
        },
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", *INPUT_SHAPE],
            "dtype": "float32",
            "mean": normalization["mean"],
            "std": normalization["std"],
            "convention": "white digit on black, values 0..1 before normalization: (x - mean) / std",
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", 10], "kind": "logits"},
        "metrics": {
            "test_accuracy": metrics["test_accuracy"],
            "per_class_accuracy": metrics["per_class_accuracy"],
            "robustness": metrics["robustness"],
            **({"real_drawings_accuracy": metrics["real_drawings"]["accuracy"]} if "real_drawings" in metrics else {}),
        },
        "data": data_description,
        "params": train_params.model_dump(exclude={"device", "num_threads"}),
        "onnx_sha256": sha256_hex(onnx_model),
        "parity_max_abs_diff": parity["max_abs_diff"],
    }


def publish_model(
    version: str,
    onnx_model: bytes,
    parity: dict[str, Any],
    metrics: dict[str, Any],
    confusion_figure: Figure,
    normalization: dict[str, float],
    data_description: dict[str, Any],
    test: dict[str, np.ndarray],
    train_params: TrainParams,
    export_params: ExportParams,
) -> dict[str, Any]:
    """Write ``models/<version>/`` and point ``models/CURRENT`` at it; return where it went.

    The folder is the serving contract (``model.onnx``, ``metadata.json``), the evaluation
    (``metrics.json``, the confusion matrix, ``MODEL_CARD.md``) and, around the same graph, an
    MLflow model (``MLmodel`` and its environment files), so MLflow's tools can load it too.
    ``version`` was chosen when the run started (the tracking run is named after it)."""
    models_dir = export_params.models_dir.resolve()
    metadata = build_metadata(
        version, onnx_model, parity, metrics, normalization, data_description, train_params, export_params.opset_version
    )
    metrics_file: dict[str, Any] = {
        key: metrics[key]
        for key in (
            "test_accuracy",
            "per_class_accuracy",
            "robustness",
            "real_drawings",
            "floors",
            "n_test",
            "confusion_matrix",
            "training",
        )
        if key in metrics  # real_drawings: only with a feedback snapshot
    }
    example = normalized_tensor(test["images"][:1], normalization).numpy()
    target = publish_version(
        models_dir,
        version,
        metadata,
        files={
            "model.onnx": onnx_model,
            "metrics.json": (json.dumps(metrics_file, indent=2) + "\n").encode(),
            "confusion_matrix.png": lambda path: confusion_figure.savefig(path, format="png"),
            MODEL_CARD_FILENAME: render_model_card(metadata, metrics_file).encode(),
            **mlflow_model_files(onnx_model, INPUT_NAME, OUTPUT_NAME, example, {"mnist_version_id": version}),
        },
        make_current=export_params.make_current,
    )
    logger.info(
        "Published model version %s (test accuracy %.4f) to %s%s",
        version,
        metrics["test_accuracy"],
        target,
        " and made it CURRENT" if export_params.make_current else "",
    )
    return {"version": version, "path": str(target), "test_accuracy": metrics["test_accuracy"], "metadata": metadata}
