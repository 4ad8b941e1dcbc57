"""kedro-mlflow's hook, made to give one run per training that a person can find in MLflow's UI.

- **One run, named after its version**: the version id is chosen when the pipeline starts
  (``model_version_id`` in the catalog, which ``publish_model`` publishes under) and the run is
  named ``train <version id>``, so the run list, the registry and ``models/`` use one name.
  A failed run keeps that name, ends FAILED and carries the reason (``mnist.failure_reason``).
- **The experiment opens on its training runs**: MLflow 3 shows an experiment without a kind as
  a GenAI one (traces); the hook marks it ``custom_model_development`` unless someone chose.
- **Parameters as plain dicts**: Kedro gives a node its parameters as the pydantic models of
  ``parameters.py``, which the plugin would log as one repr string each (``train`` = ``epochs=12
  batch_size=128 ...``). Dumped to dicts first, the plugin flattens them into ``train.epochs``,
  ``train.architecture.channels``, ... (``conf/base/mlflow.yml``).
- **The run is closed completely when a pipeline ends**: the plugin reopens the run before every
  node, and what it leaves open would be inherited by the next session of the same process (a
  notebook, a test), which would then log into the previous run.

Registered in ``settings.py`` in place of the plugin's own instance.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from mlflow import MlflowClient
from pydantic import BaseModel

from mnist_contract.version_id import new_version_id
from mnist_training.pipelines.track.nodes import EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND

logger = logging.getLogger(__name__)

VERSION_DATASET = "model_version_id"
FAILURE_REASON_TAG = "mnist.failure_reason"
# MLflow's tag values hold 8,000 characters; a traceback's last line is what a person needs.
_MAX_REASON = 2000


# MLflow 3's UI opens in its GenAI mode (a browser-wide setting) unless the address asks for this.
TRAINING_VIEW = "?workflowType=machine_learning"
# The UI ``make mlflow`` starts over the embedded store (its MLFLOW_PORT; make train passes it on).
EMBEDDED_UI = f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', '5000')}"


def run_name(version: str) -> str:
    return f"train {version}"


def run_address(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """Where a person opens the run: the tracking server, or the UI ``make mlflow`` starts."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else EMBEDDED_UI
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}{TRAINING_VIEW}"


class TrackingHook(MlflowHook):
    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        if VERSION_DATASET in pipeline.inputs() and VERSION_DATASET not in catalog:
            catalog[VERSION_DATASET] = new_version_id()
        if VERSION_DATASET in catalog and hasattr(self, "mlflow_config"):
            # The plugin starts the run under the configured name (conf/base/mlflow.yml has none).
            self.mlflow_config.tracking.run.name = run_name(catalog.load(VERSION_DATASET))
        super().before_pipeline_run(run_params, pipeline, catalog)
        run = mlflow.active_run()
        if run is None or not self._is_mlflow_enabled:
            return
        client = MlflowClient()
        experiment = client.get_experiment(run.info.experiment_id)
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND)

    @hook_impl
    def before_node_run(self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool) -> None:
        plain = {
            name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            for name, value in inputs.items()
        }
        super().before_node_run(node, catalog, plain, is_async)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        run = mlflow.active_run()
        super().after_pipeline_run(run_params, pipeline, catalog)
        if run is not None and self._is_mlflow_enabled:
            address = run_address(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id)
            name = run_name(catalog.load(VERSION_DATASET)) if VERSION_DATASET in catalog else run.info.run_name
            logger.info("MLflow run %r: %s", name, address)
        self._close_runs()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        if self.run_id is not None and self._is_mlflow_enabled:
            reason = f"{type(error).__name__}: {error}".strip()
            MlflowClient().set_tag(self.run_id, FAILURE_REASON_TAG, reason[:_MAX_REASON])
        super().on_pipeline_error(error, run_params, pipeline, catalog)
        self._close_runs()

    def _close_runs(self) -> None:
        if not self._already_active_mlflow:
            while mlflow.active_run():
                mlflow.end_run()
        self.run_id = None
