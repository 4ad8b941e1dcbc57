"""Load a model version from the model store (``models/``) and run it with ONNX Runtime.

The model store's layout and ``metadata.json`` are the model contract (``mnist_contract``,
docs/architecture.md). The normalization that serving applies comes from the version's
metadata, never from code; the rules that metadata must follow come from the contract's schemas.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mnist_backend.model_behaviour import Behaviour, BehaviourError, check_behaviour
from mnist_contract.metadata import MetadataError, ModelMetadata, parse_metadata
from mnist_contract.model_store import CURRENT_FILENAME, METADATA_FILENAME, MODEL_CARD_FILENAME

logger = logging.getLogger(__name__)

# A version's metadata is a few kilobytes; /api/v1/model/info serves it whole, the page on every rerun.
MAX_METADATA_BYTES = 1024 * 1024
# A model card is a few kilobytes of Markdown; a larger one is not served (the sync caps it too).
MAX_MODEL_CARD_BYTES = 256 * 1024
# The held-out digits a version is run on when it loads: 10 of each (~1 ms); the model sync runs all 1,000.
LOAD_CHECK_DIGITS_PER_CLASS = 10


class ModelLoadError(RuntimeError):
    """The model cannot be served; the message says why (shown by ``/ready``)."""


@dataclass(frozen=True)
class LoadedModel:
    version: str
    contract: ModelMetadata
    session: ort.InferenceSession = field(repr=False)
    mean: np.float32
    std: np.float32
    behaviour: Behaviour
    model_card: str | None = field(default=None, repr=False)  # MODEL_CARD.md, when the version has one

    @property
    def metadata(self) -> dict[str, Any]:
        """The version's whole ``metadata.json``."""
        return self.contract.document

    @property
    def test_accuracy(self) -> float:
        return self.contract.test_accuracy

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        """``[N, 28, 28]`` float32 in 0..1 (MNIST convention) -> probabilities ``[N, 10]``."""
        inputs = ((pixels - self.mean) / self.std).astype(np.float32, copy=False)
        feed = {self.contract.input_name: inputs.reshape(-1, 1, 28, 28)}
        logits = self.session.run([self.contract.output_name], feed)[0]
        return softmax(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def resolve_version(model_dir: Path, requested: str | None) -> str:
    """``MODEL_VERSION`` when set, otherwise what ``models/CURRENT`` names."""
    if requested:
        return requested
    current = model_dir / CURRENT_FILENAME
    try:
        version = current.read_text().strip()
    except FileNotFoundError:
        raise ModelLoadError(f"no model: {current} does not exist (train one with `make train`)") from None
    except OSError as error:
        raise ModelLoadError(f"cannot read {current}: {error.strerror}") from error
    if not version:
        raise ModelLoadError(f"{current} is empty")
    return version


def load_model_version(
    model_dir: Path,
    requested_version: str | None = None,
    intra_op_threads: int = 1,
    inter_op_threads: int = 1,
    max_inference_ms: float = 50.0,
    check_digits_per_class: int | None = LOAD_CHECK_DIGITS_PER_CLASS,
) -> LoadedModel:
    """Load, verify and open one version; raise ``ModelLoadError`` with the reason otherwise.

    Checks: metadata is valid JSON of at most ``MAX_METADATA_BYTES`` and meets the schema
    version it names, as the contract package ships it (the version's own ``metadata.schema.json`` is
    informative only), the ONNX file matches the fingerprint in the metadata (catches truncated
    or swapped files), the graph's input/output names are the ones the metadata promises, and
    the graph behaves on real held-out digits (``model_behaviour``: ``[N, 10]`` finite outputs,
    one digit within ``max_inference_ms``); ``check_digits_per_class`` None runs all 1,000.
    """
    version = resolve_version(model_dir, requested_version)
    version_dir = model_dir / version
    if "/" in version or version.startswith(".") or not version_dir.is_dir():
        raise ModelLoadError(f"model version {version!r} not found in {model_dir}")
    try:
        metadata = parse_metadata(_read_json(version_dir / METADATA_FILENAME, MAX_METADATA_BYTES))
    except MetadataError as error:
        raise ModelLoadError(f"{version}: {error}") from None
    if metadata.version != version:
        raise ModelLoadError(f"metadata.json says version {metadata.version}, directory is {version}")
    model_path = version_dir / "model.onnx"
    try:
        model_bytes = model_path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"cannot read {model_path}: {error.strerror}") from error
    if hashlib.sha256(model_bytes).hexdigest() != metadata.onnx_sha256:
        raise ModelLoadError(f"{model_path} does not match onnx_sha256 in metadata.json (corrupt or replaced file)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for unreadable graphs
        raise ModelLoadError(f"ONNX Runtime cannot open {model_path}: {error}") from error
    input_name, output_name = metadata.input_name, metadata.output_name
    if [i.name for i in session.get_inputs()] != [input_name] or output_name not in [
        o.name for o in session.get_outputs()
    ]:
        raise ModelLoadError(f"{model_path} does not have input {input_name!r} and output {output_name!r}")
    mean, std = np.float32(metadata.mean), np.float32(metadata.std)

    def logits_of(inputs: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: inputs})[0]

    try:
        behaviour = check_behaviour(logits_of, metadata.mean, metadata.std, max_inference_ms, check_digits_per_class)
    except BehaviourError as error:
        raise ModelLoadError(f"{version} misbehaves on held-out digits: {error}") from None
    except Exception as error:  # ORT raises its own exception types for graphs that fail at run time
        raise ModelLoadError(f"{version} fails on held-out digits: {type(error).__name__}: {error}") from None
    return LoadedModel(
        version=version,
        contract=metadata,
        session=session,
        mean=mean,
        std=std,
        behaviour=behaviour,
        model_card=_read_model_card(version_dir / MODEL_CARD_FILENAME),
    )


def _read_model_card(path: Path) -> str | None:
    """The card's text, or None when there is none or it cannot be served (said in the log):
    documentation never stops a version that passed every check from serving."""
    try:
        if (size := path.stat().st_size) > MAX_MODEL_CARD_BYTES:
            logger.warning("%s is %d bytes, over %d: not served", path, size, MAX_MODEL_CARD_BYTES)
            return None
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("%s cannot be read (%s): not served", path, error)
        return None


def _read_json(path: Path, max_bytes: int | None = None) -> object:
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise ModelLoadError(f"{path} is {size} bytes; at most {max_bytes} are read")
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"cannot read {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise ModelLoadError(f"{path} is not valid JSON: {error}") from error


class ModelHolder:
    """The model being served, swappable at run time (SIGHUP or the admin reload call).

    Readers take ``holder.model`` once per request: a reload replaces the reference
    atomically, so a request never sees half of one version and half of another. A failed
    reload keeps serving the previous version.
    """

    def __init__(
        self,
        model_dir: Path,
        requested_version: str | None,
        intra_op_threads: int,
        inter_op_threads: int,
        max_inference_ms: float = 50.0,
    ) -> None:
        self.model_dir = model_dir
        self.requested_version = requested_version
        self._threads = (intra_op_threads, inter_op_threads)
        self._max_inference_ms = max_inference_ms
        self._lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.not_ready_reason: str | None = "model not loaded yet"
        self.last_error: str | None = None

    def load(self) -> LoadedModel | None:
        """(Re)load the configured version. Returns the model, or None and records the reason."""
        with self._lock:
            started = time.perf_counter()
            try:
                model = load_model_version(
                    self.model_dir, self.requested_version, *self._threads, self._max_inference_ms
                )
            except Exception as error:  # whatever a version holds, the service stays up, not ready
                if not isinstance(error, ModelLoadError):
                    error = ModelLoadError(f"unexpected {type(error).__name__} while loading: {error}")
                self.last_error = str(error)
                if self.model is None:
                    self.not_ready_reason = str(error)
                logger.error("model load failed: %s", error, extra={"event": "model_load_failed"})
                return None
            previous = self.model.version if self.model else None
            self.model, self.not_ready_reason, self.last_error = model, None, None
            logger.info(
                "serving model version %s (test accuracy %.4f, %.4f on %d held-out digits at load, previous %s, "
                "loaded in %.0f ms)",
                model.version,
                model.test_accuracy,
                model.behaviour.accuracy,
                model.behaviour.digits,
                previous,
                (time.perf_counter() - started) * 1000,
                extra={"event": "model_loaded", "model_version": model.version},
            )
            return model
