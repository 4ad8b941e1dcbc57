"""kedro-mlflow's hook, handed the parameters as plain dicts.

Kedro gives a node its parameters as the pydantic models of ``parameters.py`` (that is how they
are validated), and the plugin logs any non-dict as one string: ``train`` would be a single
``epochs=12 batch_size=128 ...`` parameter. Dumped to dicts first, the plugin flattens them
into ``train.epochs``, ``train.architecture.channels``, ... (``conf/base/mlflow.yml``).
It also closes the run completely when a pipeline ends: the plugin reopens the run before
every node, and what it leaves open would be inherited by the next session of the same process
(a notebook, a test), which would then log into the previous run.
Registered in ``settings.py`` in place of the plugin's own instance.
"""

from __future__ import annotations

from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook
from pydantic import BaseModel


class TrackingHook(MlflowHook):
    @hook_impl
    def before_node_run(self, node: Node, catalog: DataCatalog, inputs: dict[str, Any], is_async: bool) -> None:
        plain = {
            name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            for name, value in inputs.items()
        }
        super().before_node_run(node, catalog, plain, is_async)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog) -> None:
        super().after_pipeline_run(run_params, pipeline, catalog)
        self._close_runs()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        super().on_pipeline_error(error, run_params, pipeline, catalog)
        self._close_runs()

    def _close_runs(self) -> None:
        if not self._already_active_mlflow:
            while mlflow.active_run():
                mlflow.end_run()
        self.run_id = None
