"""Tiny ONNX graphs with the model contract's input and output names that pass every static
check yet misbehave, published as a version the way training publishes one (metadata with the
graph's sha256). Built with onnx's helpers (the suites that call this have onnx: training's
dependencies, the backend's test extras); no training run needed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAN = float("nan")


def _model(nodes: list, initializers: dict[str, np.ndarray], classes: int = 10) -> bytes:
    graph = helper.make_graph(
        nodes,
        "misbehaving",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString()


def linear_graph(bias: list[float], extra_nodes: list | None = None, extra: dict | None = None) -> bytes:
    """logits = flatten(image) @ 0 + bias: the same answer for every digit."""
    classes = len(bias)
    weights = np.zeros((784, classes), dtype=np.float32)
    last = "logits" if not extra_nodes else "linear"
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], [last]),
        *(extra_nodes or []),
    ]
    initializers = {"weights": weights, "bias": np.asarray(bias, dtype=np.float32), **(extra or {})}
    return _model(nodes, initializers, classes)


def nan_graph() -> bytes:
    return linear_graph([NAN] * 10)


def twenty_class_graph() -> bytes:
    return linear_graph([float(k) for k in range(20)])


def constant_seven_graph() -> bytes:
    return linear_graph([10.0 if k == 7 else 0.0 for k in range(10)])


def slow_graph(iterations: int = 6000) -> bytes:
    """A right answer's shape after a loop of 128x128 matrix products (a 1 KB graph): 6,000 take
    ~190 ms of one core here, four times the serving budget (1,500, ~48 ms, sat on it)."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["v_in", "v_in"], ["squared"]),
            helper.make_node("Tanh", ["squared"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [128, 128]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [128, 128]),
        ],
    )
    value = helper.make_tensor("value", TensorProto.FLOAT, [1], [0.01])
    extra_nodes = [
        helper.make_node("ConstantOfShape", ["side"], ["start"], value=value),
        helper.make_node("Loop", ["trips", "keep_going", "start"], ["looped"], body=body),
        helper.make_node("ReduceSum", ["looped"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["linear", "nothing"], ["logits"]),
    ]
    extra = {
        "side": np.array([128, 128], dtype=np.int64),
        "trips": np.array(iterations, dtype=np.int64),
        "keep_going": np.array(True),
        "zero": np.array(0.0, dtype=np.float32),
    }
    return linear_graph([1.0] + [0.0] * 9, extra_nodes, extra)


def timid_graph(model: bytes, scale: float = 0.05) -> bytes:
    """A real model whose logits are multiplied by ``scale``: the same digit for every input (its
    accuracy holds), with probabilities near 1/10 (most answers are low-confidence)."""
    graph = onnx.load_from_string(model)
    for node in graph.graph.node:
        node.output[:] = ["logits_unscaled" if name == "logits" else name for name in node.output]
    graph.graph.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), "timid_scale"))
    graph.graph.node.append(helper.make_node("Mul", ["logits_unscaled", "timid_scale"], ["logits"]))
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def publish_graph(models: Path, source_version: str, graph: bytes, version: str, **metadata_changes: object) -> str:
    """A new version folder in ``models`` from ``source_version``'s metadata with ``graph`` as
    its model (and its sha256), CURRENT pointing at it."""
    target = models / version
    shutil.copytree(models / source_version, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata.update(version=version, onnx_sha256=hashlib.sha256(graph).hexdigest(), **metadata_changes)
    for path in target.iterdir():
        path.chmod(0o644)
    (target / "model.onnx").write_bytes(graph)
    (target / "metadata.json").write_text(json.dumps(metadata))
    (models / "CURRENT").write_text(version + "\n")
    return version
