"""Track the run and register the published version in the MLflow Model Registry."""

from mnist_training.pipelines.track.pipeline import create_pipeline

__all__ = ["create_pipeline"]
