"""The model contract as serving reads it: ``metadata.json``, checked against schemas we ship.

Training owns the contract; serving checks it and never trusts a version's own rules. The
schema versions this service understands live in ``model_schemas/`` (a test proves they
match training's); a version picks one by ``schema_version``, and its metadata is parsed
once into ``ModelMetadata``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_FILES = {1: "metadata.v1.schema.json"}


class MetadataError(ValueError):
    """``metadata.json`` does not meet a contract this service understands; the message says where."""


@dataclass(frozen=True)
class ModelMetadata:
    """What serving needs from ``metadata.json``; ``document`` is the whole of it, for ``/model/info``."""

    schema_version: int
    version: str
    input_name: str
    output_name: str
    mean: float
    std: float
    test_accuracy: float
    onnx_sha256: str
    document: dict[str, Any]
    # The training split's input statistics (mean, std, p01, p50, p99 of each); None in
    # versions trained before they were recorded.
    input_statistics: dict[str, dict[str, float]] | None = None


@cache
def _validator(schema_version: int) -> jsonschema.protocols.Validator:
    text = resources.files("mnist_backend").joinpath("model_schemas", SCHEMA_FILES[schema_version]).read_text()
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=jsonschema.FormatChecker())


def known_schema(schema_version: int) -> dict[str, Any]:
    """The schema this service applies to ``schema_version`` (for tests and tooling)."""
    return _validator(schema_version).schema


def parse_metadata(document: object) -> ModelMetadata:
    """Validate ``metadata.json`` against the schema its ``schema_version`` names, then read it."""
    if not isinstance(document, dict):
        raise MetadataError(f"metadata.json must be a JSON object, got {type(document).__name__}")
    schema_version = document.get("schema_version")
    if type(schema_version) is not int or schema_version not in SCHEMA_FILES:
        known = ", ".join(map(str, SCHEMA_FILES))
        raise MetadataError(f"metadata.json has schema_version {schema_version!r}; this service understands {known}")
    error = jsonschema.exceptions.best_match(_validator(schema_version).iter_errors(document))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise MetadataError(f"metadata.json breaks schema version {schema_version} at {where}: {error.message}")
    return ModelMetadata(
        schema_version=schema_version,
        version=document["version"],
        input_name=document["input"]["name"],
        output_name=document["output"]["name"],
        mean=float(document["input"]["mean"]),
        std=float(document["input"]["std"]),
        test_accuracy=float(document["metrics"]["test_accuracy"]),
        onnx_sha256=document["onnx_sha256"],
        document=document,
        input_statistics=document["data"].get("input_statistics"),
    )
