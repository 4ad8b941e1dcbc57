"""MNIST hub training: a Kedro project that trains the digit CNN and publishes ONNX model versions."""

__version__ = "0.1.0"
