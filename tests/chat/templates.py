"""Published chat templates the tests render with transformers (the oracle) and with tokend.

Qwen3, Qwen2.5, Llama 3.1 and GPT-OSS templates come out of a pinned PyPI package: the llama-cpp-python
0.3.36 sdist vendors llama.cpp's `models/templates/*.jinja`, which llama.cpp's `scripts/get_chat_template.py`
copies verbatim from each model's `tokenizer_config.json` on the Hugging Face hub.
The original Llama 3 Instruct template is not among them; it is kept here verbatim: the "chat_template" of
meta-llama/Meta-Llama-3-8B-Instruct's tokenizer_config.json (the same string appears in many public
repositories that pin it, e.g. training scripts setting `tokenizer.chat_template` for Llama 3).
"""

from __future__ import annotations

from support.package_files import pypi_file

LLAMA3_INSTRUCT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

_LLAMA_CPP_PYTHON = ("llama-cpp-python", "0.3.36")


def packaged_template(file_name: str) -> str:
    """A template from llama.cpp's models/templates, as vendored in the llama-cpp-python sdist."""
    path = pypi_file(*_LLAMA_CPP_PYTHON, f"vendor/llama.cpp/models/templates/{file_name}", sdist=True)
    return path.read_text(encoding="utf-8")
