"""Serving ships the metadata schemas it understands; training owns them. They must agree."""

from __future__ import annotations

import json

from mnist_backend.model_contract import SCHEMA_FILES, known_schema
from tests.conftest import REPO_ROOT

TRAINING_SCHEMA = REPO_ROOT / "training" / "src" / "mnist_training" / "model_metadata.schema.json"


def test_serving_understands_the_schema_version_training_writes():
    training = json.loads(TRAINING_SCHEMA.read_text())
    version = training["properties"]["schema_version"]["const"]
    assert version in SCHEMA_FILES, f"training writes schema_version {version}; serving ships {sorted(SCHEMA_FILES)}"
    assert known_schema(version) == training


def test_every_shipped_schema_names_its_own_version():
    for version in SCHEMA_FILES:
        assert known_schema(version)["properties"]["schema_version"] == {"const": version}
