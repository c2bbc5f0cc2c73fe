"""The conversations every chat format is held to its reference with (OpenAI-shaped, as a caller sends them).

Each entry: name -> (messages, tools). Formats skip what they cannot render (checked in their own test:
e.g. llama3 has no tools); `FEATURES` says which features each conversation uses so a test can pick.
"""

from __future__ import annotations

import copy

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location.\nUse it before answering about weather.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "description": "How many days to forecast", "default": 1},
            },
            "required": ["location"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the documentation.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "title": "Query", "examples": ["install", "ünïcödé"]},
                "filters": {
                    "type": "object",
                    "description": "Optional filters",
                    "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "exact": {"type": "boolean"}},
                },
                "limit": {"type": ["integer", "null"], "nullable": True},
                "mode": {"oneOf": [{"type": "string", "description": "by name"}, {"type": "number"}], "description": "match mode"},
            },
            "required": ["query", "mode"],
        },
    },
}
NO_PARAMETERS_TOOL = {"type": "function", "function": {"name": "now", "description": "The current time."}}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL, NO_PARAMETERS_TOOL]

_CALL = {"id": "call12345", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris, France", "unit": "celsius"}'}}
_CALL_OBJECT = {"id": "call67890", "type": "function", "function": {"name": "search_docs", "arguments": {"query": "grüße 👋", "mode": "x"}}}

CONVERSATIONS: dict[str, tuple[list[dict], list[dict] | None]] = {
    "user": ([{"role": "user", "content": "Hello!"}], None),
    "system_user": ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is BPE?"}], None),
    "multi_turn": (
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7 is prime."},
            {"role": "user", "content": "And another one?"},
            {"role": "assistant", "content": "  11, with spaces around.  "},
            {"role": "user", "content": "Thanks.\n\nBye"},
        ],
        None,
    ),
    "ends_with_assistant": (
        [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}],
        None,
    ),
    "names": (
        [
            {"role": "system", "content": "Moderate the chat.", "name": "rules"},
            {"role": "user", "content": "Hi all", "name": "alice"},
            {"role": "user", "content": "Hello alice", "name": "bob"},
            {"role": "assistant", "content": "Welcome both.", "name": "mod"},
            {"role": "user", "content": "Thanks", "name": "alice"},
        ],
        None,
    ),
    "unicode": (
        [
            {"role": "system", "content": "Réponds en français. 日本語も可。"},
            {"role": "user", "content": "Qu'est-ce qu'un emoji ? 😀👩‍👩‍👧‍👦🇫🇷 — «ok» ½ Ω ∑ \u00a0nbsp"},
            {"role": "assistant", "content": "Un pictogramme: 🎉. Привет! مرحبا שלום"},
            {"role": "user", "content": "\tTabs,\r\nCRLF and trailing newline\n"},
        ],
        None,
    ),
    "parts": (
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "First part."}, {"type": "text", "text": "Second part ✓"}]},
        ],
        None,
    ),
    "empty_content": ([{"role": "user", "content": ""}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": " "}], None),
    "tool_calls": (
        [
            {"role": "system", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Paris? And search docs for grüße."},
            {"role": "assistant", "content": None, "tool_calls": [_CALL]},
            {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": '{"temperature": 21, "sky": "clear ☀"}'},
            {"role": "assistant", "content": "", "tool_calls": [_CALL_OBJECT]},
            {"role": "tool", "tool_call_id": "call67890", "name": "search_docs", "content": "no results"},
            {"role": "assistant", "content": "It is 21 °C and clear in Paris; the docs have nothing on grüße."},
            {"role": "user", "content": "Thanks!"},
        ],
        TOOLS,
    ),
    "tools_no_system": ([{"role": "user", "content": "What time is it?"}], TOOLS),
    "tool_call_pending": (
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [_CALL]},
            {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "21 degrees"},
        ],
        [WEATHER_TOOL],
    ),
    "long_chat": (
        [{"role": "system", "content": "You are a patient tutor."}]
        + [
            {"role": "user" if turn % 2 == 0 else "assistant",
             "content": f"Turn {turn}: " + ("explain tokenizers, byte pairs and merges; " * (3 + turn % 4)) + "ok? 🙂"}
            for turn in range(19)
        ],
        None,
    ),
}


def conversation(name: str) -> tuple[list[dict], list[dict] | None]:
    """A fresh copy (formats and oracles must not share mutable dicts)."""
    messages, tools = CONVERSATIONS[name]
    return copy.deepcopy(messages), copy.deepcopy(tools)


def uses(name: str) -> set[str]:
    messages, tools = CONVERSATIONS[name]
    features = set()
    if tools:
        features.add("tools")
    for message in messages:
        if message.get("tool_calls"):
            features.add("tool_calls")
        if message["role"] == "tool":
            features.add("tool_role")
        if message.get("name"):
            features.add("names")
        if isinstance(message.get("content"), list):
            features.add("parts")
        if message.get("content") is None:
            features.add("null_content")
    return features
