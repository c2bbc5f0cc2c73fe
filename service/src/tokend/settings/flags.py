"""Command-line flags generated from the settings model: one flag per field, its help text and default
from the field, its ``TOKEND_*`` variable named in the help. An unset flag leaves the environment or the
default in force (argparse default None).

    parser = argparse.ArgumentParser(prog="tokend serve")
    add_setting_flags(parser)
    settings = Settings.load(flags=setting_flags(parser.parse_args()))
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from tokend.settings.model import SETTING_NAMES, Settings, env_name, flag_name
from tokend.settings.table import shown_default

__all__ = ["add_setting_flags", "setting_flags"]


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str] = SETTING_NAMES,
    *,
    aliases: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add a flag for each setting in ``names``; ``aliases`` renames flags (setting → flag), ``defaults``
    shows another default in the help (setting → value) for a command that applies it when neither the flag
    nor the variable is given."""
    aliases = aliases or {}
    defaults = defaults or {}
    for name in names:
        field = Settings.model_fields[name]
        flag = aliases.get(name, flag_name(name))
        shown = defaults[name] if name in defaults else shown_default(name).strip("`")
        help_text = f"{field.description} (default {shown}) [{env_name(name)}]"
        if _base_type(field.annotation) is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=_base_type(field.annotation), default=None, help=help_text)


def setting_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of the setting flags (None: not given)."""
    return {name: getattr(args, name) for name in SETTING_NAMES if hasattr(args, name)}


def _base_type(annotation: Any) -> type:
    """The argparse type of a field: bool, int, float or str (paths, lists and choices parse as text)."""
    for candidate in typing.get_args(annotation) or (annotation,):
        if candidate in (bool, int, float):
            return candidate
        if typing.get_origin(candidate) is typing.Annotated:
            return _base_type(typing.get_args(candidate)[0])
    return str
