#!/usr/bin/env python3
"""The documentation's screenshots of MLflow and the drawing page, taken in a real Chromium.

    .venv/bin/python scripts/docs-screenshots.py [--out docs/images]     (make docs-screenshots)

Serves the embedded tracking store (training/mlruns/, what `make train` fills) with a real
`mlflow server`, and the current model (models/CURRENT) with the real backend and page, all on
127.0.0.1, then saves:
- mlflow-run.png: the newest training run (its name, parameters, metrics, data set inputs);
- mlflow-model-version.png: the registered version of that run, its model card as description;
- mlflow-model-version-schema.png: the same page with the description folded: schema, tags;
- page-model-card.png: the drawing page with the sidebar's model card open.
Needs `make install` (Playwright, the test kit) and Debian's chromium; never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKING_DIR = REPO_ROOT / "training" / "mlruns"
MODEL_NAME = "mnist-cnn"
VIEWPORT = {"width": 1400, "height": 1000}
# MLflow 3's UI opens in its GenAI mode unless told otherwise (a browser-wide setting).
TRAINING_VIEW = "?workflowType=machine_learning"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images", help="where the PNGs go")
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "models", help="the model store to serve")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
        from playwright.sync_api import sync_playwright

        from mnist_testkit.browser import CHROMIUM, CHROMIUM_ARGS
        from mnist_testkit.processes import start_backend, start_frontend, start_mlflow_server
    except ImportError:
        return fail("run it with .venv/bin/python after `make install` (MLflow, Playwright and the test kit)")
    database = TRACKING_DIR / "mlflow.db"
    if not database.is_file() or not (args.models / "CURRENT").is_file():
        return fail("nothing to show yet: run `make train` first (it tracks into training/mlruns/)")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="docs-screenshots-") as scratch:
        logs = Path(scratch)
        # A copy of the database (the runs' artifacts stay where the runs recorded them): the
        # screenshots never write into the user's store.
        shutil.copy2(database, logs / "mlflow.db")
        mlflow_server = start_mlflow_server(f"sqlite:///{logs / 'mlflow.db'}", logs)
        backend = start_backend(args.models, logs, ENVIRONMENT="dev")
        page = start_frontend(backend.url, logs)
        try:
            client = MlflowClient(str(mlflow_server.url))
            experiment = client.get_experiment_by_name(MODEL_NAME)
            if experiment is None:
                return fail(f"the embedded store has no experiment {MODEL_NAME!r}: run `make train`")
            [run] = client.search_runs(
                [experiment.experiment_id],
                "attributes.run_name LIKE 'train %' AND attributes.status = 'FINISHED'",
                order_by=["start_time DESC"],
                max_results=1,
            ) or [None]
            if run is None:
                return fail("no finished training run in the embedded store: run `make train`")
            versions = client.search_model_versions(f"name='{MODEL_NAME}' and run_id='{run.info.run_id}'")
            if not versions:
                return fail(f"run {run.info.run_name} registered no version")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                tab = browser.new_page(viewport=VIEWPORT)
                base = str(mlflow_server.url)
                tab.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}{TRAINING_VIEW}")
                tab.get_by_text(run.info.run_name).first.wait_for(timeout=60_000)
                tab.wait_for_timeout(2000)  # the run's panels load one after another
                tab.screenshot(path=str(args.out / "mlflow-run.png"))
                tab.goto(f"{base}/#/models/{MODEL_NAME}/versions/{versions[0].version}{TRAINING_VIEW}")
                tab.get_by_text("Model card", exact=False).first.wait_for(timeout=60_000)
                tab.wait_for_timeout(2000)
                tab.screenshot(path=str(args.out / "mlflow-model-version.png"))
                tab.get_by_text("Description").first.click()  # folded: the schema and tags show
                tab.get_by_text("Schema", exact=False).first.wait_for(timeout=30_000)
                tab.get_by_text("Inputs (1)").first.click()
                tab.get_by_text("Outputs (1)").first.click()
                tab.wait_for_timeout(1000)
                tab.screenshot(path=str(args.out / "mlflow-model-version-schema.png"))
                tab.goto(str(page.url))
                tab.get_by_text("Draw a digit on the canvas", exact=False).first.wait_for(timeout=60_000)
                expander = tab.locator("details", has_text="Model card: intended use")
                expander.locator("summary").click()
                tab.locator("details[open]", has_text="Known limits").wait_for(timeout=30_000)
                tab.wait_for_timeout(1000)  # the canvas's frame draws itself
                tab.screenshot(path=str(args.out / "page-model-card.png"))
                browser.close()
        finally:
            for process in (page, backend, mlflow_server):
                process.stop()
    for name in ("mlflow-run", "mlflow-model-version", "mlflow-model-version-schema", "page-model-card"):
        print(args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
