from kedro.pipeline import Node, Pipeline

from mnist_training.pipelines.evaluate.nodes import (
    check_floors,
    evaluate_model,
    evaluate_real_drawings,
    evaluate_robustness,
    plot_confusion_matrix,
)


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_model,
                ["trained_model", "test_split", "normalization", "training_history"],
                "test_metrics",
                name="evaluate_model",
            ),
            Node(
                evaluate_robustness,
                ["trained_model", "test_split", "normalization", "params:evaluate"],
                "robustness",
                name="evaluate_robustness",
            ),
            Node(
                evaluate_real_drawings,
                ["trained_model", "feedback_held_out", "normalization", "feedback_description"],
                "real_drawings",
                name="evaluate_real_drawings",
            ),
            # Everything downstream (publication, registration) needs "metrics": a floor stops it.
            Node(
                check_floors,
                ["test_metrics", "robustness", "real_drawings", "params:evaluate"],
                "metrics",
                name="check_floors",
            ),
            Node(plot_confusion_matrix, "test_metrics", "confusion_matrix_plot", name="plot_confusion_matrix"),
        ]
    )
