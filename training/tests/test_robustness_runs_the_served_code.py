"""The robustness suite measures the preprocessing that serves: the model contract's canvas
code, imported, not a copy. Broken on purpose in a scratch copy of the contract (the paper's
level back to the border's 95th percentile, which a tight crop's ink owns: the bug real uploads
exposed), the suite's tight-crop figure falls; an untouched copy gives the installed package's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mnist_contract

# The suite's variants through the served ONNX model (models/CURRENT) on a quarter of the
# held-out digits; prints which contract it imported and each figure.
SUITE_RUN = """
import json
import numpy as np, onnxruntime as ort
import mnist_contract
from mnist_training.robustness import VARIANTS
from mnist_testkit.digits import load_test_split
from mnist_testkit.models import trained_model_dir

store = trained_model_dir()
version = store / (store / "CURRENT").read_text().strip()
metadata = json.loads((version / "metadata.json").read_text())
session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
images, labels = load_test_split()
images, labels = images[::4], labels[::4]
figures = {"contract": mnist_contract.__file__}
for name in ("tight_crop", "tight_crop_pencil", "small_off_centre"):
    variant = VARIANTS[name](images, np.random.default_rng(7))
    inputs = (variant / 255.0 - metadata["input"]["mean"]) / metadata["input"]["std"]
    feed = {metadata["input"]["name"]: inputs.astype(np.float32).reshape(-1, 1, 28, 28)}
    predicted = session.run(None, feed)[0].argmax(axis=1)
    figures[name] = float(((predicted == labels) & variant.any(axis=(1, 2))).mean())
print(json.dumps(figures))
"""
PAPER_LEVEL = "        level = min(paper_level(paper), middle)\n"


def suite_figures(contract_src: Path | None) -> dict:
    """The figures with the contract from ``contract_src`` first on the path (None: as installed)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if contract_src is not None:
        environment["PYTHONPATH"] = str(contract_src)
    result = subprocess.run(
        [sys.executable, "-c", SUITE_RUN], env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def scratch_copy(destination: Path) -> Path:
    package = Path(mnist_contract.__file__).parent
    shutil.copytree(package, destination / "mnist_contract", ignore=shutil.ignore_patterns("__pycache__"))
    return destination / "mnist_contract"


def test_breaking_the_contracts_preprocessing_moves_the_suites_figure(tmp_path):
    intact = scratch_copy(tmp_path / "intact")
    broken = scratch_copy(tmp_path / "broken")
    canvas = broken / "canvas.py"
    source = canvas.read_text()
    assert PAPER_LEVEL in source, "ink_channel changed: update this test's deliberate break"
    canvas.write_text(
        source.replace(PAPER_LEVEL, "        level = int(np.percentile(paper, 95))  # broken on purpose\n")
    )

    installed, before, after = suite_figures(None), suite_figures(intact.parent), suite_figures(broken.parent)
    print(f"\nrobustness figures, intact contract: {before}\n                    broken contract: {after}")
    assert Path(before["contract"]).is_relative_to(intact) and Path(after["contract"]).is_relative_to(broken)
    assert {k: v for k, v in before.items() if k != "contract"} == {
        k: v for k, v in installed.items() if k != "contract"
    }
    assert before["tight_crop"] >= 0.9
    assert after["tight_crop"] <= before["tight_crop"] - 0.1
    # A digit with room around it has a black border: the break cannot touch it.
    assert after["small_off_centre"] == before["small_off_centre"]
