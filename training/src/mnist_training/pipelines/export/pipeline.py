from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.export.nodes import check_onnx_parity, export_to_onnx, publish_model


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(export_to_onnx, ["trained_model", "params:export"], "onnx_model", name="export_to_onnx"),
            Node(
                check_onnx_parity,
                ["trained_model", "onnx_model", "test_split", "normalization", "params:export"],
                "onnx_parity",
                name="check_onnx_parity",
            ),
            Node(
                publish_model,
                [
                    "model_version_id",
                    "onnx_model",
                    "onnx_parity",
                    "metrics",
                    "confusion_matrix_plot",
                    "normalization",
                    "data_description",
                    "test_split",
                    "params:train",
                    "params:export",
                ],
                "published_model",
                name="publish_model",
            ),
        ]
    )
