from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.evaluate.nodes import evaluate_model, plot_confusion_matrix


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_model,
                ["trained_model", "test_split", "normalization", "training_history"],
                "metrics",
                name="evaluate_model",
            ),
            Node(plot_confusion_matrix, "metrics", "confusion_matrix_plot", name="plot_confusion_matrix"),
        ]
    )
