"""The files that make a version folder an MLflow model too (the ``onnx`` flavor, with pyfunc).

The folder already holds ``model.onnx``; MLflow needs its ``MLmodel`` description beside it
(flavor, signature, input example) and the environment files that ``mlflow models serve``,
MLServer or KServe's MLflow runtime build from. They are written by MLflow's own
``mlflow.onnx.save_model`` into a scratch folder and taken from there, all but the graph:
the version keeps the exact ``model.onnx`` whose SHA-256 its metadata records.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

# What the model expects and answers (export_to_onnx's names; the batch axis is free).
INPUT_SHAPE = (-1, 1, 28, 28)
OUTPUT_SHAPE = (-1, 10)
# The pip requirements pyfunc needs to run the graph, pinned to what trained it. Given, not
# inferred: MLflow would otherwise load the model in a subprocess to find its imports.
REQUIREMENTS = (f"onnx=={onnx.__version__}", f"onnxruntime=={ort.__version__}", f"numpy=={np.__version__}")


def signature(input_name: str, output_name: str) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), INPUT_SHAPE, input_name)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), OUTPUT_SHAPE, output_name)]),
    )


def mlflow_model_files(
    onnx_model: bytes, input_name: str, output_name: str, example: np.ndarray, metadata: dict[str, str]
) -> dict[str, bytes]:
    """``MLmodel``, the environment files and the input examples for ``onnx_model``, by name.

    ``example`` is one normalized image ``[1, 1, 28, 28]`` (a held-out digit), what the
    signature's input takes; ``metadata`` goes into ``MLmodel`` (the hub's version id).
    """
    import mlflow.onnx  # imported here: loading MLflow's flavor modules costs a second

    with tempfile.TemporaryDirectory(prefix="mlflow-model-") as scratch:
        folder = Path(scratch) / "model"
        mlflow.onnx.save_model(
            onnx.load_from_string(onnx_model),
            str(folder),
            signature=signature(input_name, output_name),
            input_example={input_name: example.astype(np.float32)},
            pip_requirements=list(REQUIREMENTS),
            metadata=metadata,
            onnx_execution_providers=["CPUExecutionProvider"],  # what the hub serves with
            save_as_external_data=False,  # one file: the contract's model.onnx
        )
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != "model.onnx"}
