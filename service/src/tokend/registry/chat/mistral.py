"""`mistral`: the instruct formats of mistral-common (option `version`: v1, v2, v3, v7), on SentencePiece or
Tekken models, rendered as `MistralTokenizer.encode_chat_completion` renders them.

    <s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]                    (v1: [INST] is text)
    <s>[AVAILABLE_TOOLS][...][/AVAILABLE_TOOLS][INST]Hi[/INST]         (v2+: control tokens)

Following mistral-common 1.13.1 (`InstructRequestNormalizer*`, `InstructTokenizerV1/V2/V3/V7`):
- consecutive messages of one role are merged (text joined with "\\n\\n"; so are text parts); the merged
  text counts towards the first message of the run, the others get empty spans;
- v1-v3: system messages are joined ("\\n\\n") into a system prompt placed before the content of the first
  (v1) / last (v2, v3) user message, whose span then holds it; v7: `[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]` in place;
- a conversation that does not start with a user message gets an empty one first (v1-v3);
- tools: `[AVAILABLE_TOOLS]` + JSON before the last user message (v2+); tool calls: `[TOOL_CALLS]` + JSON
  list of {name, arguments (parsed JSON when it parses), id (v3+)}; tool results: `[TOOL_RESULTS]` + JSON
  (v2: [{name, content}], v3: {content, call_id}) or v7: `[TOOL_RESULTS]id[TOOL_CONTENT]content[/TOOL_RESULTS]`;
  v2 leaves out tool calls and results before the last user message;
- an assistant message ends with `</s>`; assistant content loses trailing spaces (v2+);
- every text piece is encoded on its own (SentencePiece adds its word-start marker to each), content as
  ordinary text. There is no assistant header, so `add_generation_prompt` changes nothing: the prompt for
  a reply ends at the last `[/INST]` (or tool result).
A plain chat (alternating user and assistant strings after an optional system message; v7: system messages
anywhere) is counted without rendering (`message_layout`); every other chat renders.
Not checked here (mistral-common's validator is stricter): tool call id formats, the order of roles, function
names (mistral-common allows a-z, A-Z, 0-9, `_` and `-`, at most 64; a name like "[INST]<s>" is rendered here).
"""

from __future__ import annotations

import json
from typing import Any

from tokend.engine.message_counts import ROLE_NOT_EMPTY, ROLE_NOT_REPEATED, ROLE_RSTRIP_SPACES, MessageLayout
from tokend.errors import ChatRequestError
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.rules import check_message
from tokend.registry.chat.segments import RenderedChat, Segment

__all__ = ["MistralFormat", "MISTRAL_VERSIONS"]

MISTRAL_VERSIONS = ("v1", "v2", "v3", "v7")
_JOIN = "\n\n"
BOS, EOS = "<s>", "</s>"


class _Turn:
    """A message after mistral-common's normalisation (consecutive same-role messages merged)."""

    def __init__(self, role: str, owner: int | None, text: str = "", tool_calls=(), tool_call_id=None, name=None) -> None:
        self.role, self.owner, self.text = role, owner, text
        self.tool_calls, self.tool_call_id, self.name = list(tool_calls), tool_call_id, name


class MistralFormat(ChatFormat):
    name = "mistral"
    reference_content_specials = False  # mistral-common encodes content as text

    def __init__(self, *, version: str = "v3") -> None:
        if version not in MISTRAL_VERSIONS:
            raise ChatRequestError(f"must be one of {', '.join(MISTRAL_VERSIONS)}, got {version!r}", field="chat_format.options.version")
        self.version = version
        self.number = int(version[1:])

    def describe(self) -> str:
        return f"mistral {self.version}"

    def required_special_tokens(self) -> frozenset[str]:
        tokens = {BOS, EOS}
        if self.number >= 2:
            tokens |= {"[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]"}
        if self.number >= 7:
            tokens |= {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"}
        return frozenset(tokens)

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout:
        # What render() gives a plain chat whose user and assistant turns alternate: BOS, then per message its
        # control tokens around its own text piece (v1: "[INST] text [/INST]" is one text). A run of one role
        # (merged), v1-v3 system messages after the first, a first turn that is not a user's (v1-v3 put an
        # empty one first), an empty assistant message (refused) and tool results take the general path.
        # add_generation_prompt changes nothing here.
        turn = ROLE_NOT_REPEATED
        if self.number == 1:
            user = ("[INST] ", 0, True, " [/INST]", turn)
            assistant = ("", 1, True, "", turn | ROLE_NOT_EMPTY)  # text + </s>
        else:
            user = ("", 2, True, "", turn)  # [INST] text [/INST]
            assistant = ("", 1, True, "", turn | ROLE_NOT_EMPTY | ROLE_RSTRIP_SPACES)
        roles = {"user": user, "assistant": assistant}
        if self.number >= 7:
            roles["system"] = ("", 2, True, "", 0)  # [SYSTEM_PROMPT] text [/SYSTEM_PROMPT], in place
        # v1-v3: a first system message is the system prompt, put before the first (v1) / last (v2+) user text.
        system_prompt = None if self.number >= 7 else ("system", _JOIN, "user", self.number >= 2)
        # No empty chat (render refuses it; the walk sends [] to the general path), so BOS is given here.
        return MessageLayout(roles, first_roles=None if self.number >= 7 else {"user": user}, overhead=1, system_prompt=system_prompt)

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        for message in messages:
            check_message(message, self.describe(), roles=("system", "user", "assistant", "tool"), tool_calls=self.number >= 2)
            if message.role == "tool" and self.number < 2:
                raise message.refuse("mistral v1 has no tool results", "role")
        if tools and self.number < 2:
            raise ChatRequestError("mistral v1 has no tool definitions", field="tools")
        if not messages:
            raise ChatRequestError("a mistral conversation needs at least one message", field="messages")
        system_prompt, turns = self._normalise(messages)
        user_indexes = [index for index, turn in enumerate(turns) if turn.role == "user"]
        first_user = user_indexes[0] if user_indexes else -1
        last_user = user_indexes[-1] if user_indexes else -1
        segments: list[Segment] = [Segment(BOS, special=True)]
        for index, turn in enumerate(turns):
            if turn.role == "user":
                segments += self._user(turn, tools, index == first_user, index == last_user, system_prompt)
            elif turn.role == "assistant":
                segments += self._assistant(turn, before_last_user=index < last_user)
            elif turn.role == "tool":
                segments += self._tool(turn, before_last_user=index < last_user)
            else:
                segments += [Segment("[SYSTEM_PROMPT]", True, turn.owner), Segment(turn.text, owner=turn.owner),
                             Segment("[/SYSTEM_PROMPT]", True, turn.owner)]
        return RenderedChat.from_segments(segments, len(messages))

    def _normalise(self, messages: tuple[ChatMessage, ...]) -> tuple[str | None, list[_Turn]]:
        # mistral-common keeps a system message whose content is truthy: a list of empty text parts adds "" (the
        # joined prompt then ends with "\n\n"), an empty string or None adds nothing.
        system_texts = [_text(m) for m in messages if m.role == "system" and (m.parts if m.parts is not None else m.content)]
        system_prompt = _JOIN.join(system_texts) if system_texts and self.number < 7 else None
        turns: list[_Turn] = []
        run: list[ChatMessage] = []
        for message in [*messages, None]:
            if run and (message is None or message.role != run[0].role):
                turns += self._merge(run)
                run = []
            if message is not None:
                run.append(message)
        if self.number < 7 and (not turns or turns[0].role != "user"):
            owner = turns[0].owner if turns else None
            turns.insert(0, _Turn("user", owner))
        return system_prompt, turns

    def _merge(self, run: list[ChatMessage]) -> list[_Turn]:
        role, owner = run[0].role, run[0].index
        if role == "system":
            return [_Turn("system", m.index, _text(m)) for m in run] if self.number >= 7 else []
        if role == "tool":
            return [
                _Turn("tool", m.index, _text(m) if self.number >= 7 else _normalise_json(_text(m)), tool_call_id=m.tool_call_id, name=m.name)
                for m in run
            ]
        text = _JOIN.join(_text(m) for m in run if _text(m))
        if role == "assistant":
            calls = [call for m in run for call in m.tool_calls]
            if calls and text and self.number < 7:
                raise run[0].refuse(f"mistral {self.version} cannot render content and tool calls in one assistant turn", "content")
            if not calls and not text:
                raise run[0].refuse("an assistant message needs content or tool calls", "content")
            return [_Turn("assistant", owner, text, tool_calls=calls)]
        return [_Turn("user", owner, text)]

    def _user(self, turn: _Turn, tools, first: bool, last: bool, system_prompt: str | None) -> list[Segment]:
        owner, text = turn.owner, turn.text
        if self.number == 1:
            if first and system_prompt:
                text = system_prompt + _JOIN + text
            return [Segment(f"[INST] {text} [/INST]", owner=owner)]
        segments = []
        if last and tools:
            listing = [
                {"type": "function", "function": {"name": t.name, "description": t.description or "", "parameters": dict(t.parameters or {})}}
                for t in tools
            ]
            segments += [Segment("[AVAILABLE_TOOLS]", True, owner), Segment(json.dumps(listing, ensure_ascii=False), owner=owner),
                         Segment("[/AVAILABLE_TOOLS]", True, owner)]
        if last and system_prompt:
            text = system_prompt + _JOIN + text
        segments += [Segment("[INST]", True, owner), Segment(text, owner=owner), Segment("[/INST]", True, owner)]
        return segments

    def _assistant(self, turn: _Turn, *, before_last_user: bool) -> list[Segment]:
        owner = turn.owner
        segments: list[Segment] = []
        if turn.text:
            segments.append(Segment(turn.text if self.number == 1 else turn.text.rstrip(" "), owner=owner))
        if turn.tool_calls:
            if self.number == 2 and before_last_user:
                return []
            calls = []
            for call in turn.tool_calls:
                prepared: dict[str, Any] = {"name": call.name, "arguments": _parse_json(_normalise_json(call.arguments))}
                if self.number >= 3 and call.id and call.id != "null":
                    prepared["id"] = call.id
                calls.append(prepared)
            segments += [Segment("[TOOL_CALLS]", True, owner), Segment(json.dumps(calls, ensure_ascii=False), owner=owner)]
        return segments + [Segment(EOS, True, owner)]

    def _tool(self, turn: _Turn, *, before_last_user: bool) -> list[Segment]:
        owner = turn.owner
        if self.number >= 3 and turn.tool_call_id is None:
            raise ChatRequestError(f"mistral {self.version} needs the id of the call this result answers", message_index=owner,
                                   field=f"messages[{owner}].tool_call_id")
        if self.number >= 7:
            return [Segment("[TOOL_RESULTS]", True, owner), Segment(turn.tool_call_id, owner=owner), Segment("[TOOL_CONTENT]", True, owner),
                    Segment(turn.text, owner=owner), Segment("[/TOOL_RESULTS]", True, owner)]
        if self.number == 2:
            if before_last_user:
                return []
            result: Any = [{"name": turn.name, "content": _parse_json(turn.text)}]
        else:
            result = {"content": _parse_json(turn.text), "call_id": turn.tool_call_id}
        return [Segment("[TOOL_RESULTS]", True, owner), Segment(json.dumps(result, ensure_ascii=False), owner=owner),
                Segment("[/TOOL_RESULTS]", True, owner)]


def _text(message: ChatMessage) -> str:
    """Content as mistral-common aggregates it: text parts joined with "\\n\\n", empty parts skipped."""
    if message.parts is not None:
        return _JOIN.join(part for part in message.parts if part)
    return message.content or ""


def _normalise_json(text: str | None) -> str:
    """mistral-common's `_normalize_json_content`: "" -> "{}", JSON re-serialised, anything else as is."""
    if not text:
        return "{}"
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except json.JSONDecodeError:
        return text


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
