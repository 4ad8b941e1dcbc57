"""Kedro project settings. Parameter validation needs no hook: the node signatures carry
pydantic models (``parameters.py``) and Kedro validates against them before running.

Tracking (kedro-mlflow): the tracking store is ``MLFLOW_TRACKING_URI`` when set (a server, e.g.
``http://127.0.0.1:5000``), otherwise the embedded store in the project folder (Kedro runs from
``training/``): ``training/mlruns/`` (SQLite ``mlflow.db`` + artifacts), git-ignored, no server
needed. Set here because every entry point (``kedro run``, ``python -m mnist_training``, a
test's ``KedroSession``) reads this module first.
"""

import os
from pathlib import Path

EMBEDDED_TRACKING_DIR = Path.cwd() / "mlruns"
EMBEDDED_TRACKING_URI = f"sqlite:///{EMBEDDED_TRACKING_DIR / 'mlflow.db'}"

# No traffic may leave the machine; a dead server fails in seconds, not after MLflow's minutes
# of retries (__main__ checks a server before anything else runs).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
if not os.environ.get("MLFLOW_TRACKING_URI"):
    EMBEDDED_TRACKING_DIR.mkdir(exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = EMBEDDED_TRACKING_URI

# kedro-mlflow's hook, through our subclass (tracking_hook.py) instead of the plugin's instance.
from mnist_training.tracking_hook import TrackingHook  # noqa: E402  (after the environment above)

HOOKS = (TrackingHook(),)
# The plugin's own instance would open a second run (with repr-valued parameters) that ours
# would nest under. Its distribution is spelled "kedro_mlflow" in recent releases' metadata,
# which is what Kedro compares: both spellings.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow", "kedro_mlflow")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
