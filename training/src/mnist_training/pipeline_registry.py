"""The project's pipelines: ``data``, ``train``, ``evaluate``, ``export``, ``track``; the default runs all."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from mnist_training.pipelines import data, evaluate, export, track, train


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {
        "data": data.create_pipeline(),
        "train": train.create_pipeline(),
        "evaluate": evaluate.create_pipeline(),
        "export": export.create_pipeline(),
        "track": track.create_pipeline(),
    }
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
