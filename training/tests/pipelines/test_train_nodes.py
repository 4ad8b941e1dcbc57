from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from mnist_training.model import DigitCNN
from mnist_training.parameters import TrainParams
from mnist_training.pipelines.train.nodes import accuracy, choose_num_threads, resolve_device, train_model


def test_cnn_maps_a_batch_to_ten_logits():
    logits = DigitCNN(channels=4, hidden=8).eval()(torch.zeros(3, 1, 28, 28))
    assert logits.shape == (3, 10)


def test_training_returns_a_cpu_model_in_eval_mode_with_history(tiny_model):
    model, history = tiny_model
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert [entry["epoch"] for entry in history["epochs"]] == [1, 2, 3]
    assert history["epochs"][0]["loss"] > 0


def test_a_few_tiny_epochs_already_learn_something(tiny_model, small_splits, normalization):
    model, _ = tiny_model
    assert accuracy(model, small_splits[2], normalization) > 0.3  # chance is 0.1


def test_same_seed_gives_the_same_weights(small_splits, normalization, tiny_train_params):
    train, validation, _ = small_splits
    first, _ = train_model(train, validation, normalization, tiny_train_params)
    second, _ = train_model(train, validation, normalization, tiny_train_params)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_threads_default_to_one_per_two_cores_and_an_explicit_count_wins(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert choose_num_threads(0) == 8
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert choose_num_threads(0) == 1
    assert choose_num_threads(3) == 3


@pytest.mark.parametrize(("cuda_available", "expected"), [(False, "cpu"), (True, "cuda")])
def test_device_auto_picks_cuda_only_when_it_is_available(monkeypatch, cuda_available, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_available)
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"  # an explicit choice is never overridden


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("epochs", -3), ("learning_rate", 0), ("learning_rate", -0.1), ("batch_size", 0)],
)
def test_bad_training_parameters_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        TrainParams(**{field: value})
