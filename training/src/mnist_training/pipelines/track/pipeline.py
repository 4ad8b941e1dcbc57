from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.track.nodes import log_dataset, metric_curves, register_model_version


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                log_dataset,
                [
                    "data_description",
                    "train_split",
                    "validation_split",
                    "test_split",
                    "feedback_description",
                    "feedback_train_split",
                    "feedback_held_out",
                ],
                None,
                name="log_dataset",
            ),
            Node(
                metric_curves,
                ["training_history", "metrics", "onnx_parity"],
                "tracked_metrics",
                name="metric_curves",
            ),
            Node(
                register_model_version,
                ["published_model", "params:registry"],
                "registered_model",
                name="register_model_version",
            ),
        ]
    )
