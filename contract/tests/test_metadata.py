"""The metadata schemas: each names its own version, the version-id format and the input
statistics are the ones this package defines, and a broken document is named where it breaks."""

from __future__ import annotations

import copy
import json
from importlib import resources

import numpy as np
import pytest

from mnist_contract.input_statistics import STATISTICS, SUMMARY_QUANTITIES, summarize
from mnist_contract.metadata import (
    SCHEMA_FILES,
    SCHEMA_VERSION,
    MetadataError,
    check_metadata,
    parse_metadata,
    schema_document,
)
from mnist_contract.version_id import VERSION_ID_PATTERN, is_version_id, new_version_id
from tests.examples import valid_metadata


def test_every_shipped_schema_names_its_own_version_and_the_written_one_is_shipped():
    assert SCHEMA_VERSION in SCHEMA_FILES
    for version, filename in SCHEMA_FILES.items():
        schema = schema_document(version)
        assert schema["properties"]["schema_version"] == {"const": version}
        assert schema == json.loads(resources.files("mnist_contract").joinpath("schemas", filename).read_text())


def test_the_schema_holds_the_version_id_format_and_the_statistics_this_package_defines():
    schema = schema_document()
    assert schema["properties"]["version"]["pattern"] == VERSION_ID_PATTERN
    statistics = schema["properties"]["data"]["properties"]["input_statistics"]
    assert tuple(statistics["propertyNames"]["enum"]) == STATISTICS
    assert tuple(statistics["additionalProperties"]["required"]) == SUMMARY_QUANTITIES
    assert is_version_id(new_version_id()) and not is_version_id("../20261123T120501Z-a1b2c3")


def test_a_summary_of_real_looking_images_passes_the_schema():
    document = valid_metadata(new_version_id())
    rng = np.random.default_rng(1)
    document["data"]["input_statistics"] = summarize((rng.random((20, 28, 28)) > 0.85).astype(np.uint8) * 255)
    parsed = parse_metadata(document)
    assert parsed.input_statistics == document["data"]["input_statistics"]
    assert (parsed.mean, parsed.std, parsed.test_accuracy) == (0.13, 0.31, 0.98)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("onnx_sha256"), "(top level): 'onnx_sha256' is a required property"),
        (lambda d: d["input"].update(std=0), "at input/std"),
        (lambda d: d.update(version="latest"), "at version"),
        (lambda d: d.update(schema_version=2), "schema_version 2; this service understands 1"),
        (lambda d: d["data"].update(input_statistics={"ink": {}}), "at data/input_statistics"),
    ],
)
def test_a_broken_document_is_refused_naming_the_place(change, message):
    document = copy.deepcopy(valid_metadata(new_version_id()))
    change(document)
    with pytest.raises(MetadataError) as error:
        check_metadata(document)
    assert message in str(error.value)


def test_a_document_that_is_not_an_object_is_refused():
    with pytest.raises(MetadataError, match="must be a JSON object, got list"):
        parse_metadata([])
