from mnist_training.pipelines.train.pipeline import create_pipeline

__all__ = ["create_pipeline"]
