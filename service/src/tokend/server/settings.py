"""Settings of `tokend serve`: one typed model, read from flags and ``TOKEND_*`` environment variables.

Precedence: command-line flag > environment variable > default. Every setting has exactly one flag
and one environment variable (the table in DEVELOPERS.md); validation happens once, at start, and an
error names the setting by its flag and its variable so the operator knows what to change.

Not handled: configuration files, and changing settings of a running server (restart it).

    >>> s = Settings.load(flags={"port": 6000}, environ={"TOKEND_WORKERS": "2"})
    >>> (s.port, s.workers, s.metrics_port)
    (6000, 2, 9464)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tokend.server.cpus import available_cpus

__all__ = ["Settings", "SettingsError", "SETTING_NAMES", "flag_name", "env_name"]


class SettingsError(ValueError):
    """A setting has a value the server cannot start with; the message names the flag and variable."""


class Settings(BaseModel):
    """Everything `tokend serve` can be told. Immutable once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(50051, ge=0, le=65535)
    # 0 = no metrics endpoint.
    metrics_port: int = Field(9464, ge=0, le=65535)
    workers: int = Field(default_factory=available_cpus, ge=1, le=256)
    # None = the embedded default registry; a directory path or an http(s):// URL otherwise.
    registry: str | None = None
    # None = every model of the registry (latest version of each), loaded before SERVING.
    models: tuple[str, ...] | None = None
    # Seconds between registry refreshes in each worker; 0 = never.
    reload_interval: float = Field(30.0, ge=0)
    max_batch_items: int = Field(1024, ge=1)
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1)
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=2**31 - 1)
    grace_period: float = Field(20.0, ge=0)
    # Seconds before the server asks a client to reconnect (so it re-resolves the service); 0 = never.
    max_connection_age: float = Field(300.0, ge=0)
    reflection: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # A CA bundle here turns on mutual TLS: clients must present a certificate signed by it.
    tls_client_ca: Path | None = None
    # 0 = no playground.
    playground_port: int = Field(8080, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        # "a,b@2" from the environment; an empty string means "all models", like leaving it unset.
        if isinstance(value, str):
            names = tuple(part.strip() for part in value.split(",") if part.strip())
            return names or None
        if isinstance(value, (list, tuple)) and not value:
            return None
        return value

    @field_validator("registry", mode="before")
    @classmethod
    def _empty_registry_is_default(cls, value: Any) -> Any:
        return value or None

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("tls_cert", "tls_key", "tls_client_ca", mode="before")
    @classmethod
    def _empty_path_is_off(cls, value: Any) -> Any:
        return value or None

    @field_validator("tls_cert", "tls_key", "tls_client_ca")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist or is not a regular file")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "tls_cert and tls_key go together: give both (--tls-cert and --tls-key) or neither"
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs a server certificate: also give --tls-cert and --tls-key")
        if self.port == 0 and self.workers > 1:
            raise ValueError(
                "port 0 (an ephemeral port) cannot be shared by several workers: give a fixed --port or --workers 1"
            )
        used = {"port": self.port, "metrics_port": self.metrics_port, "playground_port": self.playground_port}
        taken: dict[int, str] = {}
        for name, port in used.items():
            if port == 0:
                continue
            if port in taken:
                raise ValueError(f"{name} and {taken[port]} are both {port}: give them different ports")
            taken[port] = name
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def load(cls, *, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from flags (None values = not given) over ``TOKEND_*`` variables over defaults.

        Raises SettingsError naming the flag and the environment variable of every bad setting.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for name in SETTING_NAMES:
            if env_name(name) in environ:
                values[name] = environ[env_name(name)]
                origin[name] = f"environment variable {env_name(name)}={environ[env_name(name)]!r}"
        for name, value in (flags or {}).items():
            if name not in SETTING_NAMES:
                raise SettingsError(f"unknown setting {name!r}; known settings: {', '.join(SETTING_NAMES)}")
            if value is not None:
                values[name] = value
                origin[name] = f"flag {flag_name(name)}={value!r}"
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, origin)) from None

    def as_log_fields(self) -> dict[str, Any]:
        """The settings as JSON-ready values (paths as strings), for the start-up log line."""
        return json.loads(self.model_dump_json())


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)


def flag_name(setting: str) -> str:
    """``max_batch_items`` → ``--max-batch-items``."""
    return "--" + setting.replace("_", "-")


def env_name(setting: str) -> str:
    """``max_batch_items`` → ``TOKEND_MAX_BATCH_ITEMS``."""
    return "TOKEND_" + setting.upper()


def _describe(exc: ValidationError, origin: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"] if not isinstance(part, int)]
        message = error["msg"].removeprefix("Value error, ")
        if location and location[0] in SETTING_NAMES:
            name = location[0]
            source = origin.get(name, "default")
            problems.append(
                f"setting {name} ({flag_name(name)} / {env_name(name)}) from {source}: {message}"
            )
        else:
            problems.append(message)
    return "invalid settings: " + "; ".join(problems)
