"""All service configuration, read from environment variables (one typed place)."""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_rate
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


# Outside dev every API key must be at least this long: a short or dictionary key can be guessed
# despite the failed-authentication limit (scripts/make-local-secrets.sh writes 24 random bytes,
# 32 URL-safe characters).
MIN_API_KEY_LENGTH = 16

_COMMA_LISTS = ("api_keys", "api_keys_file", "admin_api_keys", "admin_api_keys_file", "cors_origins", "trusted_proxies")


class Settings(BaseSettings):
    """Every variable is documented in the repository's ``.env.example``."""

    # Empty means unset: Compose passes `MODEL_VERSION: ${MODEL_VERSION:-}` as "" when it is not given.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True, env_ignore_empty=True)

    environment: Environment = Environment.DEV
    model_dir: Path = Path("models")
    model_version: str | None = Field(None, description="serve this version instead of models/CURRENT")
    model_reload_interval_s: float = Field(
        0,
        ge=0,
        description="look at models/CURRENT this often and switch to the version it names (the model sync "
        "writes it); 0: only on SIGHUP or the admin reload",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, description="comma-separated")
    api_keys_file: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="comma-separated files, one key per line; for Docker/Compose secrets"
    )
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="keys allowed to call /api/v1/admin/*; ordinary keys are not"
    )
    admin_api_keys_file: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    rate_limit: str | None = Field(None, description="per valid key (else per client address); empty = off")
    auth_failure_limit: str = Field("10/minute", description="failed authentications per client address")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="addresses/networks whose X-Forwarded-For is believed; empty = none"
    )
    max_batch: int = Field(256, ge=1)
    # 4 MiB: 256 images as 784 four-decimal floats (1.4 MB) or as canvas PNGs (~3.3 MB) fit.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="any request; batches may be this large")
    max_predict_body_bytes: int = Field(1024 * 1024, ge=1024, description="one /api/v1/predict request")
    # 2 MP: a photo of a sheet of paper fits; a canvas drawing is 0.08 MP. Pillow's own
    # decompression-bomb check is set to MAX_BATCH_PIXELS, the most one request may decode.
    max_image_pixels: int = Field(2_000_000, ge=28 * 28, description="declared width x height of one image")
    max_batch_pixels: int = Field(25_000_000, ge=28 * 28, description="all images of one request together")
    decode_workers: int = Field(2, ge=1, description="threads decoding images (PNG/JPEG) at once")
    # A 280x280 canvas drawing decodes in about a millisecond: cheaper on the event loop than a
    # thread hop (and the GIL handover after it). Larger images go to the decode threads.
    decode_inline_pixels: int = Field(100_000, ge=0, description="images up to this size decode on the event loop")
    decode_queue: int = Field(64, ge=0, description="requests waiting for a decode thread; more get 503")
    max_concurrent_batches: int = Field(4, ge=1, description="batch requests in progress at once; more get 503")

    # asyncio, not uvloop: under saturation uvloop served some connections seconds late (p99 at 64
    # connections 1.1 s against 55 ms, same throughput); at 16 connections it is ~6 % faster.
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"
    max_header_bytes: int = Field(16 * 1024, ge=1024, description="request line + headers; more get 431")
    header_timeout_s: float = Field(10.0, gt=0, description="to receive a request's headers; then 408")
    # nginx reads bodies for 10 s at the edge; staging and Kubernetes reach the backend directly.
    body_timeout_s: float = Field(30.0, gt=0, description="to receive a body once its headers are in; then 408")
    # Above the idle time of every client that keeps connections here (nginx and the page: 3 s; on
    # Kubernetes ingress-nginx's 60 s, so k8s/base sets 75): the side that closes an idle
    # connection must be the one that would send on it.
    keep_alive_timeout_s: int = Field(5, ge=1, description="an idle connection is closed after this")
    max_connections: int = Field(1000, ge=1, description="open connections + requests; more get 503")

    ort_intra_op_threads: int = Field(1, ge=0, description="0 lets ONNX Runtime choose")
    ort_inter_op_threads: int = Field(1, ge=0)
    # A version is run on held-out digits when it loads; ~0.1 ms a digit here, so 50 refuses only
    # a graph that would stall the service (one that loops for seconds), even on a busy machine.
    max_inference_ms: float = Field(50.0, gt=0, description="one digit alone, at load; slower versions are refused")

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = True
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated")

    enable_bench_endpoint: bool = Field(False, description="mount the no-op baseline used by `make bench`")

    # People's corrections (POST /api/v1/feedback). Off without a database; dev uses SQLite.
    feedback_database_url: str | None = Field(
        None, description="e.g. sqlite:///feedback.sqlite3 or postgresql://feedback@postgres/feedback; empty = off"
    )
    feedback_database_password_file: Path | None = Field(None, description="the database password, from a file")
    feedback_key_file: Path | None = Field(
        None, description="the key that signs feedback tokens (one per line; the first signs); dev: a random one"
    )
    feedback_token_ttl_s: int = Field(3600, ge=1, description="how long after an answer its correction is taken")
    feedback_retention_days: float = Field(30, gt=0, description="unreviewed corrections are deleted after this")
    feedback_max_concurrent: int = Field(8, ge=1, description="feedback store calls at once; more get 503")

    @model_validator(mode="before")
    @classmethod
    def _split_comma_lists(cls, values: dict) -> dict:
        for key in _COMMA_LISTS:
            raw = values.get(key)
            if isinstance(raw, str):
                values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        return values

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _is_a_rate(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_rate(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate such as '100/second' or '600/minute'") from None
        return value

    @model_validator(mode="after")
    def _image_limits_agree(self) -> Settings:
        if self.max_image_pixels > self.max_batch_pixels:
            raise ValueError(
                f"MAX_IMAGE_PIXELS ({self.max_image_pixels}) must not exceed MAX_BATCH_PIXELS ({self.max_batch_pixels})"
            )
        return self

    @model_validator(mode="after")
    def _keys_required_outside_dev(self) -> Settings:
        if self.environment != Environment.DEV and not self.all_api_keys:
            raise ValueError(
                f"ENVIRONMENT={self.environment.value} needs API keys: set API_KEYS or API_KEYS_FILE "
                "(refusing to start an unauthenticated service outside dev)"
            )
        if self.environment != Environment.DEV:
            for kind, keys in (("API", self.all_api_keys), ("admin API", self.all_admin_api_keys)):
                short = [index for index, key in enumerate(keys, start=1) if len(key) < MIN_API_KEY_LENGTH]
                if short:
                    raise ValueError(
                        f"{kind} key {short[0]} of {len(keys)} is shorter than {MIN_API_KEY_LENGTH} characters; "
                        f"ENVIRONMENT={self.environment.value} needs keys that cannot be guessed "
                        "(scripts/make-local-secrets.sh writes 32-character ones)"
                    )
        return self

    @model_validator(mode="after")
    def _feedback_key_outside_dev(self) -> Settings:
        if self.feedback_database_url and self.environment != Environment.DEV and not self.feedback_key_file:
            raise ValueError(
                f"ENVIRONMENT={self.environment.value} takes feedback (FEEDBACK_DATABASE_URL) and needs "
                "FEEDBACK_KEY_FILE: every replica must sign and check tokens with the same key"
            )
        if self.feedback_database_url:  # unreadable or short secrets stop the start with a sentence
            _ = self.feedback_keys, self.feedback_database_password
        return self

    @cached_property
    def feedback_keys(self) -> tuple[bytes, ...]:
        """The token keys from FEEDBACK_KEY_FILE (none: dev signs with a key of its own)."""
        if self.feedback_key_file is None:
            return ()
        keys = _keys([], [self.feedback_key_file], "FEEDBACK_KEY_FILE")
        if self.environment != Environment.DEV and any(len(key) < 32 for key in keys):
            raise ValueError("FEEDBACK_KEY_FILE keys must be at least 32 characters outside dev")
        if not keys:
            raise ValueError(f"FEEDBACK_KEY_FILE {self.feedback_key_file} holds no key")
        return keys

    @cached_property
    def feedback_database_password(self) -> str | None:
        if self.feedback_database_password_file is None:
            return None
        try:
            return self.feedback_database_password_file.read_text().strip()
        except OSError as error:
            raise ValueError(
                f"FEEDBACK_DATABASE_PASSWORD_FILE {self.feedback_database_password_file} cannot be read: "
                f"{error.strerror}"
            ) from error

    @cached_property
    def all_api_keys(self) -> tuple[bytes, ...]:
        """Keys from ``API_KEYS`` and ``API_KEYS_FILE`` (blank lines and ``#`` comments ignored)."""
        return _keys(self.api_keys, self.api_keys_file, "API_KEYS_FILE")

    @cached_property
    def all_admin_api_keys(self) -> tuple[bytes, ...]:
        """Keys from ``ADMIN_API_KEYS`` and ``ADMIN_API_KEYS_FILE``."""
        return _keys(self.admin_api_keys, self.admin_api_keys_file, "ADMIN_API_KEYS_FILE")

    @property
    def auth_enabled(self) -> bool:
        return bool(self.all_api_keys)


def _keys(inline: list[SecretStr], files: list[Path], file_variable: str) -> tuple[bytes, ...]:
    keys = [key.get_secret_value() for key in inline]
    for file in files:
        try:
            lines = file.read_text().splitlines()
        except OSError as error:
            raise ValueError(f"{file_variable} {file} cannot be read: {error.strerror}") from error
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return tuple(key.encode() for key in keys)
