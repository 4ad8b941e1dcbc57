"""``metadata.json``: the schema each version's metadata meets, and its typed reading.

The schemas live in ``schemas/``, one file per schema version; ``SCHEMA_VERSION`` is the one
training writes, and serving understands every version in ``SCHEMA_FILES``. Writers call
``check_metadata`` before a version is published; readers call ``parse_metadata``, which
checks against the schema shipped here and never trusts a version's own copy of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

import jsonschema

SCHEMA_FILES = {1: "metadata.v1.schema.json"}
SCHEMA_VERSION = 1  # what a new version is written with


class MetadataError(ValueError):
    """``metadata.json`` does not meet a contract this package knows; the message says where."""


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
    text = resources.files("mnist_contract").joinpath("schemas", SCHEMA_FILES[schema_version]).read_text()
    schema = json.loads(text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=jsonschema.FormatChecker())


def schema_document(schema_version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The schema of ``schema_version`` (each published version carries a copy, for its readers)."""
    return _validator(schema_version).schema


def check_metadata(document: object) -> int:
    """Raise ``MetadataError`` naming the first place ``document`` breaks the schema its
    ``schema_version`` names; return that schema version."""
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
    return schema_version


def parse_metadata(document: object) -> ModelMetadata:
    """Validate ``metadata.json`` against the schema its ``schema_version`` names, then read it."""
    schema_version = check_metadata(document)
    document = cast(dict[str, Any], document)
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
