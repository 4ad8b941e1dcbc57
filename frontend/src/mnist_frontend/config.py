"""Frontend settings, from environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    backend_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    api_key_file: Path | None = Field(None, description="a file holding the key (Docker/Compose secrets)")
    request_timeout_s: float = Field(5.0, gt=0)
    connect_retries: int = Field(2, ge=0, description="retries (with backoff) when the backend cannot be reached")

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            # The backend's key-file format (one key per line, # comments): the first key is ours.
            for line in self.api_key_file.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    return line.strip()
        return None
