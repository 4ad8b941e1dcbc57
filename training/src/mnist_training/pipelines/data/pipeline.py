from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.data.nodes import compute_normalization, describe_data, load_mnist, stratified_split


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
            Node(compute_normalization, "train_split", "normalization", name="compute_normalization"),
            Node(
                describe_data,
                ["mnist_raw", "train_split", "validation_split", "test_split"],
                "data_description",
                name="describe_data",
            ),
        ]
    )
