"""The `# Tools` section of harmony: function tools as a TypeScript namespace, as openai-harmony writes it.

    >>> tools_section([("get_weather", "Weather now.", {"type": "object", "properties": {"city": {"type": "string"}},
    ...                                                 "required": ["city"]})])
    '# Tools\\n\\n## functions\\n\\nnamespace functions {\\n\\n// Weather now.\\ntype get_weather = (_: {\\ncity: string,\\n}) => any;\\n\\n} // namespace functions'

A line-for-line reading of openai-harmony 0.0.8's `json_schema_to_typescript` and `template_tools_section`
(src/encoding.rs), including its quirks: `integer` is `number`, a string `default` is quoted unless the
property is an enum, `oneOf` variants are listed one per line, descriptions become `//` comments, other
JSON-schema keywords are ignored. JSON values print as serde_json prints them (compact).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["tools_section", "schema_to_typescript", "rust_lines"]


def rust_lines(text: str) -> list[str]:
    """Rust's `str::lines()` (since Rust 1.77, which openai-harmony is built with): split on "\\n", a "\\r"
    before a "\\n" is part of the line ending, no empty last line. A bare "\\r" at the very end stays.

    >>> rust_lines("a\\r\\nb\\r"), rust_lines("x\\r\\n"), rust_lines("")
    (['a', 'b\\r'], ['x'], [])
    """
    *ended, last = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in ended]
    return lines + [last] if last else lines


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_enum(schema: Any) -> bool:
    enum = schema.get("enum") if isinstance(schema, Mapping) else None
    return isinstance(enum, list) and len(enum) > 0


def _get_str(schema: Any, key: str) -> str | None:
    value = schema.get(key) if isinstance(schema, Mapping) else None
    return value if isinstance(value, str) else None


def _nullable(schema: Any, type_text: str) -> str:
    if isinstance(schema, Mapping) and schema.get("nullable") is True and "null" not in type_text:
        return f"{type_text} | null"
    return type_text


def _default_comment(schema: Mapping[str, Any], *, quote_plain: bool) -> str:
    """`default: ...` for a schema with a default (quote_plain: a non-enum string default is quoted)."""
    default = schema["default"]
    if isinstance(default, str) and not _is_enum(schema):
        return f'default: "{default}"'
    if isinstance(default, str) and not quote_plain:
        return f"default: {default}"
    return f"default: {_json(default)}"


def schema_to_typescript(schema: Any, indent: str) -> str:
    one_of = schema.get("oneOf") if isinstance(schema, Mapping) else None
    if isinstance(one_of, list):
        out = ""
        for variant in one_of:
            out += f"\n{indent} | "
            out += _nullable(variant, schema_to_typescript(variant, f"{indent}   "))
            trailing = []
            description = _get_str(variant, "description")
            if description is not None:
                trailing.append(description)
            if isinstance(variant, Mapping) and "default" in variant:
                trailing.append(_default_comment(variant, quote_plain=True))
            if trailing:
                out += f" // {' '.join(trailing)}"
        return out
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    if isinstance(kind, list):
        names = ["number" if item == "integer" else item for item in kind if isinstance(item, str)]
        if names:
            return " | ".join(names)
    if isinstance(kind, str):
        if kind == "object":
            return _object_to_typescript(schema, indent)
        if kind == "string":
            enum = schema.get("enum")
            if isinstance(enum, list):
                names = [f'"{value}"' for value in enum if isinstance(value, str)]
                if names:
                    return " | ".join(names)
            return "string"
        if kind in ("number", "integer"):
            return "number"
        if kind == "boolean":
            return "boolean"
        if kind == "array":
            if "items" in schema:
                return f"{schema_to_typescript(schema['items'], indent)}[]"
            return "Array<any>"
    return "any"


def _object_to_typescript(schema: Mapping[str, Any], indent: str) -> str:
    out = ""
    description = _get_str(schema, "description")
    if description is not None:
        out += f"{indent}// {description}\n"
    out += "{\n"
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        required_list = schema.get("required")
        required = {item for item in required_list if isinstance(item, str)} if isinstance(required_list, list) else set()
        for key, value in properties.items():
            optional = "" if key in required else "?"
            title = _get_str(value, "title")
            if title is not None:
                out += f"{indent}// {title}\n{indent}//\n"
            has_one_of = isinstance(value, Mapping) and "oneOf" in value
            if not has_one_of:
                property_description = _get_str(value, "description")
                if property_description is not None:
                    out += f"{indent}// {property_description}\n"
            examples = value.get("examples") if isinstance(value, Mapping) else None
            if isinstance(examples, list) and examples:
                out += f"{indent}// Examples:\n"
                for example in examples:
                    if isinstance(example, str):
                        out += f'{indent}// - "{example}"\n'
            one_of = value.get("oneOf") if isinstance(value, Mapping) else None
            if isinstance(one_of, list):
                out += _one_of_property(key, value, one_of, optional, indent)
                continue
            out += f"{indent}{key}{optional}: "
            out += _nullable(value, schema_to_typescript(value, f"{indent}    "))
            out += ","
            if not has_one_of and isinstance(value, Mapping) and "default" in value:
                out += f" // {_default_comment(value, quote_plain=False)}"
            out += "\n"
    out += f"{indent}}}"
    return out


def _one_of_property(key: str, value: Mapping[str, Any], variants: list, optional: str, indent: str) -> str:
    out = ""
    property_description = _get_str(value, "description")
    skip = (
        property_description is not None
        and bool(variants)
        and _get_str(variants[0], "description") == property_description
    )
    rendered_above = False
    if not skip and property_description is not None:
        out += f"{indent}// {property_description}\n"
        rendered_above = True
    if "default" in value:
        out += f"{indent}// {_default_comment(value, quote_plain=False)}\n"
    out += f"{indent}{key}{optional}:\n"
    for number, variant in enumerate(variants):
        out += f"{indent} | "
        out += _nullable(variant, schema_to_typescript(variant, f"{indent}   "))
        trailing = []
        variant_description = _get_str(variant, "description")
        if not (number == 0 and rendered_above) and variant_description is not None:
            if variant_description != property_description:
                trailing.append(variant_description)
        if isinstance(variant, Mapping) and "default" in variant:
            trailing.append(_default_comment(variant, quote_plain=False))
        if trailing:
            out += f" // {' '.join(trailing)}"
        out += "\n"
    out += f"{indent},\n"
    return out


def tools_section(functions: Sequence[tuple[str, str, Any]]) -> str:
    """`# Tools` with the `functions` namespace: (name, description, parameters or None) per tool."""
    content = ["## functions\n"]
    if functions:
        content.append("namespace functions {\n")
        for name, description, parameters in functions:
            content.extend(f"// {line}" for line in rust_lines(description))
            if parameters is not None:
                content.append(f"type {name} = (_: {schema_to_typescript(parameters, '')}) => any;\n")
            else:
                content.append(f"type {name} = () => any;\n")
        content.append("} // namespace functions")
    return "\n\n".join(["# Tools", "\n".join(content)])
