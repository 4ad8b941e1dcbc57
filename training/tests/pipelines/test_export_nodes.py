from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mnist_training.parameters import ExportParams
from mnist_training.pipelines.export.nodes import OnnxParityError, check_onnx_parity, export_to_onnx


@pytest.fixture(scope="module")
def onnx_bytes(tiny_model, tmp_path_factory) -> bytes:
    return export_to_onnx(tiny_model[0], ExportParams(models_dir=tmp_path_factory.mktemp("models")))


def test_export_has_the_contract_names_and_a_dynamic_batch_axis(onnx_bytes, tiny_model):
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("image", "logits")
    assert inp.shape[1:] == [1, 28, 28] and isinstance(inp.shape[0], str)
    for batch in (1, 7):
        x = np.random.default_rng(batch).normal(size=(batch, 1, 28, 28)).astype(np.float32)
        logits = session.run(None, {"image": x})[0]
        assert logits.shape == (batch, 10)
        with torch.no_grad():
            np.testing.assert_allclose(logits, tiny_model[0](torch.from_numpy(x)).numpy(), atol=1e-4)


def test_parity_check_passes_on_the_whole_test_split(
    onnx_bytes, tiny_model, small_splits, normalization, export_params
):
    report = check_onnx_parity(tiny_model[0], onnx_bytes, small_splits[2], normalization, export_params)
    assert report["n_images"] == len(small_splits[2]["labels"])
    assert report["argmax_mismatches"] == 0
    assert report["max_abs_diff"] <= 1e-4


def test_parity_check_fails_loudly_when_the_export_differs(
    onnx_bytes, tiny_model, small_splits, normalization, export_params
):
    drifted = copy.deepcopy(tiny_model[0])
    with torch.no_grad():
        drifted.classifier[-1].bias.add_(0.01)  # a change far too small to flip predictions
    with pytest.raises(OnnxParityError, match=r"max \|diff\| 0\.01"):
        check_onnx_parity(drifted, onnx_bytes, small_splits[2], normalization, export_params)
