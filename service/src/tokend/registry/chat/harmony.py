"""`harmony`: the GPT-OSS chat format, rendered as openai-harmony renders it (on `o200k_harmony`).

    <|start|>system<|message|>You are ChatGPT, ...\\nReasoning: medium\\n\\n# Valid channels: ...<|end|>
    <|start|>developer<|message|># Instructions\\n\\nBe brief.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant

How OpenAI-shaped messages become harmony messages (openai-harmony takes its own message objects; this is
the mapping, the test builds the same conversation with openai-harmony's classes):
- a harmony system message always comes first (the format's own tokens): SystemContent with the format
  options `model_identity`, `reasoning_effort` (low|medium|high|null), `knowledge_cutoff`,
  `conversation_start_date` (openai-harmony's defaults; no date, so the ids never change with the clock);
- a leading `system` or `developer` message becomes the developer message's `# Instructions` (text parts
  joined with "\\n"); `tools` become its `functions` namespace. A system/developer message elsewhere is
  refused: harmony has one place for instructions;
- `user` -> user message (`name` -> `user:name`), each text part one content;
- `assistant` without tool calls -> channel `final`; with tool calls -> its content (if any) on channel
  `commentary`, then one message per call: `to=functions.NAME`, channel `commentary`, content type
  `<|constrain|>json`, the arguments as content, ended by `<|call|>`;
- `tool` -> a message from `functions.NAME` to `assistant` on `commentary`; NAME is the message's `name`,
  or the function of the earlier tool call whose `id` is its `tool_call_id`.
Every text piece is encoded on its own, content as ordinary text (special-token text in content stays
text), exactly as openai-harmony does. `add_generation_prompt` appends `<|start|>assistant`.
"""

from __future__ import annotations

from typing import Any

from tokend.engine.message_counts import MessageLayout
from tokend.errors import ChatRequestError
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.harmony_tools import tools_section
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.rules import check_message
from tokend.registry.chat.segments import PartsBuilder, RenderedChat, SpecialText

__all__ = ["HarmonyFormat", "HARMONY_DEFAULTS"]

START, MESSAGE, END, CHANNEL, CALL, CONSTRAIN = map(
    SpecialText, ("<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|call|>", "<|constrain|>")
)
HARMONY_DEFAULTS: dict[str, Any] = {
    "model_identity": "You are ChatGPT, a large language model trained by OpenAI.",
    "reasoning_effort": "medium",
    "knowledge_cutoff": "2024-06",
    "conversation_start_date": None,
}
_CHANNELS = ("analysis", "commentary", "final")
_ROLES = ("user", "assistant", "tool")
_INSTRUCTIONS = "# Instructions"


class HarmonyFormat(ChatFormat):
    name = "harmony"
    reference_content_specials = False  # openai-harmony encodes every text piece with encode_ordinary

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(HARMONY_DEFAULTS))
        if unknown:
            raise ChatRequestError(f"unknown harmony options {unknown}; known: {sorted(HARMONY_DEFAULTS)}", field="chat_format.options")
        self.options = {**HARMONY_DEFAULTS, **options}
        for key, value in self.options.items():
            if value is not None and not isinstance(value, str):
                raise ChatRequestError(f"must be a string or null, got {value!r}", field=f"chat_format.options.{key}")
        if self.options["reasoning_effort"] not in (None, "low", "medium", "high"):
            raise ChatRequestError("must be low, medium, high or null", field="chat_format.options.reasoning_effort")

    def required_special_tokens(self) -> frozenset[str]:
        return frozenset({START, MESSAGE, END, CHANNEL, CALL, CONSTRAIN})

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout:
        # What render builds for a user message without a name, [START, "user", MESSAGE, content, END], an
        # assistant one without tool calls, [START, "assistant", CHANNEL, "final", MESSAGE, content, END], and
        # a leading system or developer message: the developer message, whose one text is the instructions.
        count = encoding.count_ordinary
        roles = {"user": ("", 3 + count("user"), True), "assistant": ("", 4 + count("assistant") + count("final"), True)}
        developer = (_INSTRUCTIONS + "\n\n", 3 + count("developer"), True)
        return MessageLayout(roles, {**roles, "system": developer, "developer": developer})

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        segments = PartsBuilder()
        has_instructions = bool(messages) and messages[0].role in ("system", "developer")
        has_function_tools = bool(tools)
        self._message(segments, None, "system", None, [self._system_text(has_function_tools)])
        if has_instructions or has_function_tools:
            sections = []
            if has_instructions:
                check_message(messages[0], self.name, roles=("system", "developer"), tool_calls=False)
                sections += [_INSTRUCTIONS, messages[0].text]
            if has_function_tools:
                sections.append(tools_section([(tool.name, tool.description or "", tool.parameters) for tool in tools]))
            self._message(segments, 0 if has_instructions else None, "developer", None, ["\n\n".join(sections)])
        call_names: dict[str, str] = {}  # tool call id -> function name
        message_part = self._message
        for message in messages[1:] if has_instructions else messages:
            owner, role, content, parts, name, tool_calls, _, extra_keys, _ = message
            if role not in _ROLES or extra_keys:
                check_message(message, self.name, roles=_ROLES, tool_calls=True)
            contents = list(parts) if parts is not None else ([] if content is None else [content])
            if role == "user":
                if name is None:  # the common message, without the call below
                    segments.extend(owner, [START, "user", MESSAGE, *contents, END])
                else:
                    message_part(segments, owner, "user", name, contents)
            elif role == "assistant":
                if not tool_calls:
                    if name is None:
                        segments.extend(owner, [START, "assistant", CHANNEL, "final", MESSAGE, *contents, END])
                    else:
                        message_part(segments, owner, "assistant", name, contents, channel="final")
                    continue
                if message.text:
                    self._message(segments, owner, "assistant", message.name, contents, channel="commentary")
                for call in message.tool_calls:
                    if call.id is not None:
                        call_names[call.id] = call.name
                    self._message(
                        segments, owner, "assistant", message.name, [call.arguments], channel="commentary",
                        recipient=f"functions.{call.name}", content_type=f"{CONSTRAIN}json",
                    )
            else:
                name = message.name or call_names.get(message.tool_call_id or "")
                if name is None:
                    raise message.refuse(
                        "harmony renders a tool result as coming from functions.NAME: give the function's name, or the "
                        "tool_call_id of an earlier assistant tool call", "name",
                    )
                self._message(segments, owner, f"functions.{name}", None, contents, channel="commentary", recipient="assistant", tool=True)
        if add_generation_prompt:
            segments.add(None, START, "assistant")
        return segments.build(message_count=len(messages))

    def _system_text(self, has_function_tools: bool) -> str:
        options = self.options
        sections = []
        top = [options["model_identity"]] if options["model_identity"] is not None else []
        if options["knowledge_cutoff"] is not None:
            top.append(f"Knowledge cutoff: {options['knowledge_cutoff']}")
        if options["conversation_start_date"] is not None:
            top.append(f"Current date: {options['conversation_start_date']}")
        if top:
            sections.append("\n".join(top))
        if options["reasoning_effort"] is not None:
            sections.append(f"Reasoning: {options['reasoning_effort']}")
        channels = f"# Valid channels: {', '.join(_CHANNELS)}. Channel must be included for every message."
        if has_function_tools:
            channels += "\nCalls to these tools must go to the commentary channel: 'functions'."
        sections.append(channels)
        return "\n\n".join(sections)

    @staticmethod
    def _message(
        segments: PartsBuilder,
        owner: int | None,
        role: str,
        name: str | None,
        contents: list[str],
        *,
        channel: str | None = None,
        recipient: str | None = None,
        content_type: str | None = None,
        tool: bool = False,
    ) -> None:
        """openai-harmony's `Render<Message>`: every text piece its own part."""
        pieces = [START, role]
        if name is not None and not tool:
            pieces.append(f":{name}")
        if recipient is not None and recipient != "all":
            pieces.append(f" to={recipient}")
        if channel is not None:
            pieces += [CHANNEL, channel]
        if content_type is not None:
            if content_type.startswith(CONSTRAIN):
                pieces += [" ", CONSTRAIN]
                if content_type[len(CONSTRAIN):]:
                    pieces.append(content_type[len(CONSTRAIN):])
            else:
                pieces.append(f" {content_type}")
        pieces.append(MESSAGE)
        pieces += contents
        pieces.append(CALL if role == "assistant" and recipient is not None else END)
        segments.extend(owner, pieces)
