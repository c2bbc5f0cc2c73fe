"""Chat formats in the registry: the manifest field, publishing with one, publishing one onto an existing
version (a new version), loading, and `Registry.open(DIR).load(ref).encode_chat(...)`."""

from __future__ import annotations

import json

import pytest

from chat.hf_tokenizers import model_parts
from chat.templates import LLAMA3_INSTRUCT_TEMPLATE
from support.registries import openai_rank_file, publish_openai
from tokend.engine import dump_tiktoken_ranks
from tokend.errors import ChatFormatNotSetError, ModelFormatError, VersionConflictError
from tokend.registry import Registry, builtin_chat_format, chat_format_from_template, chat_format_from_tokenizer_config

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


@pytest.fixture
def registry(tmp_path):
    with Registry.open(tmp_path / "registry", create=True) as opened:
        yield opened


@pytest.fixture(scope="module")
def llama3_payload():
    ranks, specials, pattern = model_parts("llama3")
    return dump_tiktoken_ranks(ranks), specials, pattern


def _publish_llama3(registry, llama3_payload, chat_format=None):
    payload, specials, pattern = llama3_payload
    return registry.publish(
        "llama3", payload=payload, payload_format="tiktoken_ranks", pattern=pattern, special_tokens=specials,
        provenance={"kind": "imported", "source": "quicktok-v1 0.4.0 llama3.vocab"}, chat_format=chat_format,
    )


def test_publish_with_a_template_and_encode_chat_from_a_reopened_registry(registry, llama3_payload, reference_tokenizer):
    spec = chat_format_from_template(LLAMA3_INSTRUCT_TEMPLATE, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    manifest = _publish_llama3(registry, llama3_payload, spec)
    assert manifest.chat_format == spec
    stored = json.loads((registry.source.root / "llama3" / "1" / "manifest.json").read_text())
    assert stored["chat_format"]["name"] == "template" and stored["chat_format"]["variables"]["bos_token"] == "<|begin_of_text|>"
    reopened = Registry.open(registry.location)
    expected = reference_tokenizer("llama3-instruct").apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True)
    assert reopened.load("llama3").encode_chat(MESSAGES).ids == expected
    assert reopened.load("llama3@1").count_chat(MESSAGES).total == len(expected)


def test_publishing_a_chat_format_onto_an_existing_model_is_a_new_version(registry, llama3_payload, reference_tokenizer):
    first = _publish_llama3(registry, llama3_payload)
    with pytest.raises(ChatFormatNotSetError, match="llama3@1 has no chat format"):
        registry.load("llama3").encode_chat(MESSAGES)
    second = registry.publish_chat_format("llama3@1", builtin_chat_format("llama3"), description="with chat")
    assert (second.version, second.chat_format.name, second.description) == (2, "llama3", "with chat")
    assert second.payload.sha256 == first.payload.sha256 and second.provenance.extra["chat_format_added_to"] == "llama3@1"
    # no second copy of the ranks: @2 shares @1's file
    assert second.payload.shared_with == "llama3@1"
    assert sorted(path.name for path in (registry.source.root / "llama3" / "2").iterdir()) == ["manifest.json"]
    expected = reference_tokenizer("llama3-instruct").apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True)
    assert registry.load("llama3").encode_chat(MESSAGES).ids == expected  # latest = @2
    assert registry.load("llama3@1").chat is None  # @1 is unchanged
    assert registry.load("llama3@1").encoding.encode("Hi there") == registry.load("llama3@2").encoding.encode("Hi there")


def test_a_different_chat_format_under_a_published_version_conflicts(registry, llama3_payload):
    payload, specials, pattern = llama3_payload
    _publish_llama3(registry, llama3_payload, builtin_chat_format("llama3"))
    with pytest.raises(VersionConflictError):
        registry.publish("llama3", version=1, payload=payload, payload_format="tiktoken_ranks", pattern=pattern,
                         special_tokens=specials, provenance={"kind": "imported"}, chat_format=None)


def test_a_chat_format_the_model_cannot_carry_is_never_published(registry):
    with pytest.raises(ModelFormatError, match="needs the special tokens"):
        publish_openai(registry, "cl100k_base", as_name="gpt4") and None
        registry.publish_chat_format("gpt4@1", builtin_chat_format("harmony"))
    assert [summary.versions for summary in registry.list_models()] == [(1,)]


def test_openai_chat_on_cl100k_counts_and_refuses_ids(registry):
    publish_openai(registry, "cl100k_base", as_name="gpt4")
    registry.publish_chat_format("gpt4", {"name": "openai-chat"})
    count = registry.load("gpt4").count_chat(MESSAGES)
    assert count.estimate and count.total == 3 + 1 + 3 + 3 + 1 + 2 + 3  # see test_openai_chat for the cookbook oracle
    assert count.per_message == [3 + 1 + 3, 3 + 1 + 2]


def test_a_manifest_whose_template_does_not_compile_is_refused_at_load(registry, llama3_payload):
    """A manifest written by something else than publish (another tool, an older tokend) is checked at load."""
    from tokend.registry import ChatFormatSpec, NewVersion

    manifest = _publish_llama3(registry, llama3_payload)
    broken = manifest.replace(version=2, chat_format=ChatFormatSpec(name="template", template="{% for m in messages %}"))
    registry.publish_version(NewVersion(broken, llama3_payload[0]))
    with pytest.raises(ModelFormatError, match="chat template does not compile: line 1"):
        Registry.open(registry.location).load("llama3@2")
    assert Registry.open(registry.location).load("llama3@1").chat is None  # the other version still serves


def test_manifests_without_a_chat_format_still_read(registry):
    # An unset chat_format is left out of the file (as every optional field), so the manifest is written
    # exactly as before the field existed; one written with "chat_format": null reads as the same manifest.
    from tokend.registry.manifest import parse_manifest

    manifest = publish_openai(registry, "o200k_base")
    assert manifest.chat_format is None
    stored = (registry.source.root / "o200k_base" / "1" / "manifest.json").read_bytes()
    assert "chat_format" not in json.loads(stored)
    with_null = json.dumps({**json.loads(stored), "chat_format": None}).encode()
    reread = parse_manifest(with_null, what="o200k_base@1")
    assert reread.chat_format is None and reread.same_content(manifest)
    assert reread.to_json_bytes() == stored


def test_chat_format_from_tokenizer_config():
    config = {
        "chat_template": [{"name": "default", "template": "{{ bos_token }}x"}, {"name": "tool_use", "template": "{{ eos_token }}t"}],
        "bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>", "pad_token": None,
    }
    spec = chat_format_from_tokenizer_config(json.dumps(config).encode())
    assert (spec.template, spec.variables) == ("{{ bos_token }}x", {"bos_token": "<s>", "eos_token": "</s>"})
    assert chat_format_from_tokenizer_config(json.dumps(config).encode(), template_name="tool_use").template == "{{ eos_token }}t"
    with pytest.raises(ModelFormatError, match="no chat_template"):
        chat_format_from_tokenizer_config(b"{}")


def test_publishing_a_chat_format_keeps_every_other_field_of_the_manifest(registry):
    # publish_chat_format republishes the payload: BOS/EOS, normalizer, the model's own chat template and
    # the family carry over; only chat_format (and version, provenance) change.
    from support.tokenizer_json import qwen3_tokenizer_json
    from tokend.registry.payload import describe_payload

    payload = json.dumps(qwen3_tokenizer_json(), ensure_ascii=False).encode()
    first = registry.publish_version(describe_payload(
        name="qwen3", version=1, payload_format="hf_tokenizer_json", stored=payload, bos_token="<|endoftext|>",
        eos_token="<|im_end|>", chat_template="{{ messages[0]['content'] }}", family="byte_level_bpe",
        provenance={"kind": "imported", "source": "qwen3 tokenizer.json (quicktok-v1 0.4.0)"},
    ))  # fmt: skip
    second = registry.publish_chat_format("qwen3@1", builtin_chat_format("chatml"))
    assert (second.version, second.chat_format.name, first.chat_format) == (2, "chatml", None)
    for field in ("normalizer", "bos_token", "eos_token", "chat_template", "family"):
        assert getattr(second, field) == getattr(first, field) is not None, field
    reopened = Registry.open(registry.location)
    assert reopened.manifest("qwen3@2").eos_token == "<|im_end|>" and reopened.load("qwen3@2").chat is not None
    assert reopened.load("qwen3@2").encoding.encode("Hi there") == reopened.load("qwen3@1").encoding.encode("Hi there")


def test_publishing_a_chat_format_onto_a_version_sharing_a_payload_shares_it_too(registry):
    from chat.harmony_oracle import render
    from tokend.engine import O200K_HARMONY

    publish_openai(registry, "o200k_base")
    registry.publish(
        "gpt-oss", payload=openai_rank_file("o200k_base"), payload_format="tiktoken_ranks", compression="gzip",
        pattern=O200K_HARMONY.pattern, special_tokens=dict(O200K_HARMONY.special_tokens),
        share_payload_with="o200k_base@1", provenance={"kind": "imported", "source": "o200k_base.tiktoken.gz"},
    )  # fmt: skip
    second = registry.publish_chat_format("gpt-oss@1", builtin_chat_format("harmony"))
    assert second.payload.shared_with == "o200k_base@1" and second.payload == registry.manifest("gpt-oss@1").payload
    assert sorted(path.name for path in (registry.source.root / "gpt-oss" / "2").iterdir()) == ["manifest.json"]
    assert Registry.open(registry.location).load("gpt-oss").encode_chat(MESSAGES).ids == render(MESSAGES, None, True)
