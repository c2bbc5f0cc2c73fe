"""The table of settings in DEVELOPERS.md, generated from the settings model (a test keeps them equal).

    python -m tokend.settings          # prints the table
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from tokend.settings.model import SETTING_NAMES, Settings, env_name, flag_name

__all__ = ["settings_table", "shown_default"]


def shown_default(name: str) -> str:
    """How the docs and ``--help`` show a setting's default."""
    field = Settings.model_fields[name]
    extra: Any = field.json_schema_extra or {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    value = field.default
    if value is PydanticUndefined or value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def settings_table() -> str:
    """The markdown table: variable, flag, default, what it does."""
    rows = ["| env | flag | default | what |", "|---|---|---|---|"]
    for name in SETTING_NAMES:
        field = Settings.model_fields[name]
        flag = flag_name(name)
        if field.annotation is bool:
            flag = f"{flag} / --no-{flag[2:]}"
        rows.append(f"| {env_name(name)} | {flag} | {shown_default(name)} | {field.description} |")
    return "\n".join(rows) + "\n"
