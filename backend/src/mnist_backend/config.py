"""All service configuration, read from environment variables (one typed place)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every variable is documented in the repository's ``.env.example``."""

    # Empty means unset: Compose passes `MODEL_VERSION: ${MODEL_VERSION:-}` as "" when it is not given.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True, env_ignore_empty=True)

    environment: Environment = Environment.DEV
    model_dir: Path = Path("models")
    model_version: str | None = Field(None, description="serve this version instead of models/CURRENT")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, description="comma-separated")
    api_keys_file: Path | None = Field(None, description="one key per line; for Docker/Compose secrets")

    rate_limit: str | None = Field(None, description="per client, e.g. '100/second' or '600/minute'; empty = off")
    max_batch: int = Field(256, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=28 * 28, description="decoded width x height of one image")

    ort_intra_op_threads: int = Field(1, ge=0, description="0 lets ONNX Runtime choose")
    ort_inter_op_threads: int = Field(1, ge=0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated")

    enable_bench_endpoint: bool = Field(False, description="mount the no-op baseline used by `make bench`")

    @model_validator(mode="before")
    @classmethod
    def _split_comma_lists(cls, values: dict) -> dict:
        for key in ("api_keys", "cors_origins"):
            raw = values.get(key)
            if isinstance(raw, str):
                values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        return values

    @model_validator(mode="after")
    def _keys_required_outside_dev(self) -> Settings:
        if self.environment != Environment.DEV and not self.all_api_keys:
            raise ValueError(
                f"ENVIRONMENT={self.environment.value} needs API keys: set API_KEYS or API_KEYS_FILE "
                "(refusing to start an unauthenticated service outside dev)"
            )
        return self

    @cached_property
    def all_api_keys(self) -> tuple[bytes, ...]:
        """Keys from ``API_KEYS`` and ``API_KEYS_FILE`` (blank lines and ``#`` comments ignored)."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text().splitlines()
            except OSError as error:
                raise ValueError(f"API_KEYS_FILE {self.api_keys_file} cannot be read: {error.strerror}") from error
            keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return tuple(key.encode() for key in keys)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.all_api_keys)
