"""Settings of `tokend serve` (and of the playground run alone): one typed model, read from flags and
``TOKEND_*`` environment variables (pydantic-settings).

Precedence: command-line flag > environment variable > default. Every setting has exactly one flag and one
environment variable, both derived from its field name (``max_batch_items`` → ``--max-batch-items`` /
``TOKEND_MAX_BATCH_ITEMS``); its help text and documented default are the field's own (``flags.py`` builds
the command-line flags, ``table.py`` the table in DEVELOPERS.md from them). Validation happens once, at
start, and an error names the setting by its flag and its variable so the operator knows what to change.

Not handled: configuration files, and changing settings of a running server (restart it).

    >>> s = Settings.load(flags={"port": 6000}, environ={"TOKEND_WORKERS": "2"})
    >>> (s.port, s.workers, s.metrics_port)
    (6000, 2, 9464)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from tokend_api import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_REQUEST_BYTES

from tokend.settings.cpus import available_cpus

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "SETTING_NAMES", "flag_name", "env_name"]

ENV_PREFIX = "TOKEND_"
# 256 MiB: one 8 MiB single-piece request (the largest the default limits accept) runs alone in a worker;
# with a worker's ~150 MiB at rest, a worker stays under ~450 MiB (tokend.service.admission).
DEFAULT_MAX_WORK_BYTES = 256 << 20
DEFAULT_BULK_LANE_BYTES = 1 << 20  # an item this large is ~5 ms of engine work or more


class SettingsError(ValueError):
    """A setting has a value the server cannot start with; the message names the flag and variable."""


def _setting(default: Any = ..., *, help: str, shown: str | None = None, **constraints: Any) -> Any:
    """A field with its help text and, where the default is not a plain value, how the docs show it."""
    extra = {"shown_default": shown} if shown is not None else None
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Settings(BaseSettings):
    """Everything `tokend serve` can be told. Immutable once loaded."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    host: str = _setting("0.0.0.0", help="address the gRPC and metrics ports listen on")
    port: int = _setting(50051, help="gRPC port shared by all workers", ge=0, le=65535)
    metrics_port: int = _setting(9464, help="Prometheus /metrics port; 0 = off", ge=0, le=65535)
    workers: int = _setting(
        available_cpus, help="worker processes", shown="CPUs available to the process (cgroup-aware)", ge=1, le=256
    )
    registry: str | None = _setting(
        None, help="model registry: a directory or an http(s):// URL", shown="the embedded default registry"
    )
    models: Annotated[tuple[str, ...] | None, NoDecode] = _setting(
        None, help="comma-separated model references loaded before SERVING", shown="all models (latest of each)"
    )
    reload_interval: float = _setting(
        30.0,
        help="seconds between registry refreshes; 0 = off (then also no unloading of unused versions, and no re-read of "
        "the registry for a reference it does not list: a call for a version published since is NOT_FOUND)",
        ge=0,
    )
    unload_unused_after: float = _setting(
        300.0,
        help="seconds after the last call that pinned it (name@7) that a loaded version which name, an alias and "
        "--models do not serve is unloaded, at a refresh (its memory freed once its calls end; the next call for it "
        "loads it again); 0 = never",
        ge=0,
    )
    max_pinned_versions: int = _setting(
        4,
        help="of the versions --unload-unused-after keeps for pinned calls, most a process keeps loaded; at a refresh "
        "the least recently called beyond it are unloaded, except those called since the previous refresh",
        ge=0,
    )
    max_batch_items: int = _setting(DEFAULT_MAX_BATCH_ITEMS, help="most items per request", ge=1)
    max_request_bytes: int = _setting(
        DEFAULT_MAX_REQUEST_BYTES, help="most input bytes per request (text, data, listed special tokens; 4 per id)", ge=1
    )
    max_message_bytes: int = _setting(
        DEFAULT_MAX_MESSAGE_BYTES, help="gRPC max receive/send message size; also bounds every answer", ge=1024,
        le=2**31 - 1,
    )  # fmt: skip
    max_work_bytes: int = _setting(
        DEFAULT_MAX_WORK_BYTES,
        help="estimated working memory the large requests of one worker hold at once (more wait; small ones never do)",
        ge=0,
    )
    answer_room_bytes: int | None = _setting(
        None,
        help="of --max-work-bytes, what large requests leave to the unsent answers of small requests (16 KiB or more), "
        "so that those are answered while a large request holds the rest; at most half of --max-work-bytes (a request "
        "estimated past the budget runs alone beside this room: a worker's worst case grows by it); 0 = none",
        shown="an eighth of --max-work-bytes",
        ge=0,
    )
    bulk_lane_bytes: int = _setting(
        DEFAULT_BULK_LANE_BYTES,
        help="items of at least this many bytes (characters of text) are encoded on a worker's low-priority bulk threads "
        "(and large Encode answers written there; splits by the regex fallback that outlast 2 ms go on on two more "
        "such threads), so small calls get the CPU first; 0 = off",
        ge=0,
    )
    bulk_lane_policy: Literal["nice", "idle"] = _setting(
        "nice", help="priority of the bulk threads: nice (niceness 19) or idle (SCHED_IDLE: only CPU nobody else wants)"
    )
    grace_period: float = _setting(20.0, help="seconds in-flight calls get to finish on SIGTERM", ge=0)
    drain_flush: float = _setting(
        2.0,
        help="seconds a draining worker keeps its connections after its last call returned, so queued answers "
        "reach their clients (HTTP/2 flow control holds a large one until the client reads it); within the grace period",
        ge=0,
    )
    max_connection_age: float = _setting(
        300.0, help="seconds before clients are asked to reconnect (they re-resolve); 0 = never", ge=0
    )
    # At most Linux's default fs.nr_open (the most open files a process may have), far above any file limit in
    # use: gRPC aborts the worker at 2**31 - 1 (its "no cap"; a CHECK in connection_quota.cc) and refuses more.
    max_connections: int = _setting(
        2048,
        help="gRPC connections a worker holds at once on each address it listens on (each ~17 KiB at rest); one more "
        "is closed as it is accepted (its client sees UNAVAILABLE), so clients opening connections without end cost a "
        "worker this many at most and leave it file descriptors for the rest (localhost is two addresses; lowered at "
        "start, with a file_limit_low warning, where the hard open-file limit cannot hold it on every address)",
        ge=1,
        le=1 << 20,
    )
    answer_send_seconds: float = _setting(
        10.0,
        help="seconds (plus one per MiB of answer) a unary call's answer may wait to be sent after it was made; a call "
        "holding working memory whose client has not read its answer by then is cancelled and the memory given back",
        gt=0,
    )
    stream_idle_timeout: float = _setting(
        30.0,
        help="seconds a DecodeStream waits for its client's next message before it is ended (DEADLINE_EXCEEDED) and its "
        "stream slot freed; 0 = never",
        ge=0,
    )
    stream_yield_after: float = _setting(
        10.0,
        help="seconds after which a DecodeStream still waiting for its client's next message (or a stream waiting for its "
        "client to take an answer) gives its stream slot to a new stream when every slot is taken (it ends with "
        "DEADLINE_EXCEEDED, or CANCELLED), or its room in the work budget to a request that waits for room (a stream "
        "holding room gives it sooner: once its answers were unread 1 s in all while others wanted room, +1 s a MiB it "
        "read); 0 = never",
        ge=0,
    )
    stream_message_rate: float = _setting(
        1000.0,
        help="messages a second a DecodeStream's client may send on average (one second's worth at once); faster, the "
        "server reads its next message later and flow control slows the client; 0 = no limit, else at least 1",
        ge=0,
    )
    reflection: bool = _setting(False, help="gRPC server reflection, for grpcurl (`make serve` turns it on)")
    tls_cert: Path | None = _setting(None, help="PEM server certificate (with --tls-key turns on TLS)", shown="off")
    tls_key: Path | None = _setting(None, help="PEM private key of --tls-cert", shown="off")
    tls_client_ca: Path | None = _setting(
        None, help="PEM CA bundle; clients must present a certificate it signed (mutual TLS)", shown="off"
    )
    playground_host: str = _setting(
        "127.0.0.1", help="address the playground listens on (127.0.0.1: this machine only; 0.0.0.0: everyone)"
    )
    playground_port: int = _setting(8080, help="token playground web page port; 0 = off", ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = _setting("info", help="debug, info, warning or error")

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

    @field_validator("stream_message_rate")
    @classmethod
    def _rate_off_or_at_least_one(cls, value: float) -> float:
        # Below one message a second the pace sleeps for seconds between reads, where neither the client's
        # cancellation nor the idle timeout is seen: a setting that holds a stream slot, not a limit.
        if 0 < value < 1:
            raise ValueError(f"{value} is not 0 (no limit) or at least 1 message a second")
        return value

    @field_validator("answer_room_bytes", mode="before")
    @classmethod
    def _empty_room_is_the_default(cls, value: Any) -> Any:
        return None if value == "" else value  # (TOKEND_ANSWER_ROOM_BYTES= set empty, as the TLS paths take it)

    @field_validator("answer_room_bytes")
    @classmethod
    def _room_within_the_budget(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Large requests get the budget less this room: all of it would leave them nothing, and every one would wait
        # its 60 s and fail. Half at most: a request estimated past the budget runs alone with the room's answers
        # beside it, so a worker's worst case grows by the room (DEFAULT_MAX_WORK_BYTES' ~450 MiB holds for the
        # default eighth; review22). (max_work_bytes is validated first: it is declared first.)
        budget = info.data.get("max_work_bytes")
        if value is not None and budget and value > budget // 2:
            raise ValueError(f"{value} is more than half of max_work_bytes ({budget}): large requests would get too "
                             "little room, and a worker's worst case would grow by it")
        return value

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
            raise ValueError("tls_cert and tls_key go together: give both (--tls-cert and --tls-key) or neither")
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init arguments) over the environment; no .env or secret files. `load` may name the environment.
        environ = _ENVIRON.get()
        return (init_settings, env_settings if environ is None else _MappingEnvSource(settings_cls, environ))

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def load(cls, *, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from flags (None values = not given) over ``TOKEND_*`` variables over defaults.

        Raises SettingsError naming the flag and the environment variable of every bad setting.
        """
        environ = os.environ if environ is None else environ
        given: dict[str, Any] = {}
        origin = {
            name: f"environment variable {env_name(name)}={environ[env_name(name)]!r}"
            for name in SETTING_NAMES
            if env_name(name) in environ
        }
        for name, value in (flags or {}).items():
            if name not in SETTING_NAMES:
                raise SettingsError(f"unknown setting {name!r}; known settings: {', '.join(SETTING_NAMES)}")
            if value is not None:
                given[name] = value
                origin[name] = f"flag {flag_name(name)}={value!r}"
        try:
            with _environment(environ):
                return cls(**given)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, origin)) from None

    def as_log_fields(self) -> dict[str, Any]:
        """The settings as JSON-ready values (paths as strings), for the start-up log line."""
        return json.loads(self.model_dump_json())


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("tokend_settings_environ", default=None)


@contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}


def flag_name(setting: str) -> str:
    """``max_batch_items`` → ``--max-batch-items``."""
    return "--" + setting.replace("_", "-")


def env_name(setting: str) -> str:
    """``max_batch_items`` → ``TOKEND_MAX_BATCH_ITEMS``."""
    return ENV_PREFIX + setting.upper()


def _describe(exc: ValidationError, origin: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"] if not isinstance(part, int)]
        message = error["msg"].removeprefix("Value error, ")
        if location and location[0] in SETTING_NAMES:
            name = location[0]
            source = origin.get(name, "default")
            problems.append(f"setting {name} ({flag_name(name)} / {env_name(name)}) from {source}: {message}")
        else:
            problems.append(message)
    return "invalid settings: " + "; ".join(problems)
