from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.data.nodes import (
    add_feedback,
    compute_normalization,
    describe_data,
    load_feedback,
    load_mnist,
    stratified_split,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(load_mnist, "params:data", "mnist_raw", name="load_mnist"),
            Node(
                stratified_split,
                ["mnist_raw", "params:data"],
                ["train_split", "validation_split", "test_split"],
                name="stratified_split",
            ),
            Node(
                load_feedback,
                "params:data",
                ["feedback_train_split", "feedback_held_out", "feedback_description"],
                name="load_feedback",
            ),
            # What the model learns from; normalization and the drift reference stay MNIST's own.
            Node(
                add_feedback,
                ["train_split", "feedback_train_split", "params:data"],
                "training_split",
                name="add_feedback",
            ),
            Node(compute_normalization, "train_split", "normalization", name="compute_normalization"),
            Node(
                describe_data,
                ["mnist_raw", "train_split", "validation_split", "test_split", "feedback_description"],
                "data_description",
                name="describe_data",
            ),
        ]
    )
