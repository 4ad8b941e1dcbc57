"""Kedro project settings. Parameter validation needs no hook: the node signatures carry
pydantic models (``parameters.py``) and Kedro validates against them before running."""

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
