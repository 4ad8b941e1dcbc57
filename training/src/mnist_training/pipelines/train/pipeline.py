from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.train.nodes import train_model


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_model,
                ["training_split", "validation_split", "normalization", "params:train"],
                ["trained_model", "training_history"],
                name="train_model",
            ),
        ]
    )
