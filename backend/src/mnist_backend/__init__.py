"""MNIST hub backend: the FastAPI + ONNX Runtime inference service."""

__version__ = "0.1.0"
