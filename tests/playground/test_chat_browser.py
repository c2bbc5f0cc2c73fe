"""The chat view of the page in a real browser (headless Debian Chromium): a user edits the messages (roles,
content, adding and removing turns, tools as JSON); each ticked model shows the total, what each message
costs and the rendered prompt with its special tokens outlined — equal to the registry's own encode_chat /
count_chat (held to the reference renderers in tests/chat); an estimate and a model without a chat format
say so; typed markup stays text."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from support.chat_models import build_chat_registry
from tokend.playground import PlaygroundServer
from tokend.registry import Registry

from .chromium import headless_chromium

REFS = ["chatml@1", "o200k_base@1", "plain@1"]
TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "The time", "parameters": {"type": "object"}}}]
READ = """
const out = {};
for (const column of document.querySelectorAll('#chat-results .chat-result')) {
  out[column.dataset.model] = {
    count: column.querySelector('.count') ? Number(column.querySelector('.count').textContent) : null,
    error: column.querySelector('.error') ? column.querySelector('.error').textContent : null,
    estimate: column.querySelector('.chat-estimate') !== null,
    per_message: [...column.querySelectorAll('.chat-cost')].map((item) => Number(item.dataset.tokens)),
    ids: [...column.querySelectorAll('.chat-prompt > .tok')].map((span) => Number(span.dataset.tokenId)),
    specials: [...column.querySelectorAll('.chat-prompt > .tok.special')].map((span) => span.textContent),
    messages: [...column.querySelectorAll('.chat-prompt > .tok')].map((span) => span.dataset.message),
    text: [...column.querySelectorAll('.chat-prompt > .tok')].map((span) => span.textContent).join(''),
  };
}
return out;
"""


@pytest.fixture(scope="module")
def chat_registry(tmp_path_factory):
    registry = Registry.open(build_chat_registry(tmp_path_factory.mktemp("chat") / "registry"))
    for ref in REFS:  # loaded up front, as `tokend serve` loads its models before it serves
        registry.load(ref)
    return registry


@pytest.fixture(scope="module")
def chat_page(chat_registry):
    with PlaygroundServer(chat_registry, host="127.0.0.1", port=0) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def _settle(driver):
    """Until the chat view has rendered the current editor contents."""
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.getElementById('chat-results').dataset.state === 'ready'"),
        "the chat view did not render",
    )


def _set_content(driver, index, text):
    box = driver.find_elements(By.CSS_SELECTOR, "#chat-messages .chat-content")[index]
    box.clear()
    box.send_keys(text)


def test_editing_a_chat_shows_each_models_prompt_tokens(browser, chat_page, chat_registry):
    browser.get(chat_page + "#models=" + ",".join(REFS) + "&text=")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-messages .chat-message"))
    _settle(browser)
    # Edit the first two turns, add an assistant turn and a user turn, remove one, add tools.
    _set_content(browser, 0, "Be brief. <b>bold</b> stays text")
    _set_content(browser, 1, "What is a token?\nTwo lines.")
    browser.find_element(By.ID, "chat-add").click()
    _set_content(browser, 2, "A piece of text.")
    browser.find_element(By.ID, "chat-add").click()
    _set_content(browser, 3, "to be removed")
    browser.find_elements(By.CSS_SELECTOR, "#chat-messages .chat-remove")[3].click()
    browser.find_element(By.ID, "chat-add").click()
    Select(browser.find_elements(By.CSS_SELECTOR, "#chat-messages .chat-role")[3]).select_by_value("user")
    _set_content(browser, 3, "And <|im_end|> typed by a user?")
    browser.find_element(By.ID, "chat-tools").send_keys(json.dumps(TOOLS))
    _settle(browser)

    messages = [
        {"role": "system", "content": "Be brief. <b>bold</b> stays text"},
        {"role": "user", "content": "What is a token?\nTwo lines."},
        {"role": "assistant", "content": "A piece of text."},
        {"role": "user", "content": "And <|im_end|> typed by a user?"},
    ]
    shown = browser.execute_script(READ)
    assert list(shown) == REFS
    chatml = chat_registry.load("chatml")
    encoded, counted = chatml.encode_chat(messages, TOOLS), chatml.count_chat(messages, TOOLS)
    assert shown["chatml@1"]["ids"] == encoded.ids and shown["chatml@1"]["count"] == counted.total
    assert shown["chatml@1"]["per_message"] == counted.per_message
    # Special tokens are visible as such: ChatML's own, and the one the user typed (transformers' rule).
    assert sorted(set(shown["chatml@1"]["specials"])) == ["<|im_end|>", "<|im_start|>"]
    assert len(shown["chatml@1"]["specials"]) == encoded.text.count("<|im_start|>") + encoded.text.count("<|im_end|>")
    start, end = encoded.message_spans[1]
    assert shown["chatml@1"]["messages"][start:end] == ["1"] * (end - start)
    assert "<b>bold</b>" in shown["chatml@1"]["text"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chat-results b") == []

    assert shown["o200k_base@1"]["error"] and "openai-chat format has no tool definitions" in shown["o200k_base@1"]["error"]
    assert "plain@1 has no chat format" in shown["plain@1"]["error"]
    assert "tokend registry chat-format plain@1 --chat-format NAME" in shown["plain@1"]["error"]

    browser.find_element(By.ID, "chat-tools").clear()
    browser.find_element(By.ID, "chat-generation-prompt").click()
    _settle(browser)
    shown = browser.execute_script(READ)
    estimate = chat_registry.load("o200k_base").count_chat(messages, add_generation_prompt=False)
    assert shown["o200k_base@1"]["estimate"] and shown["o200k_base@1"]["count"] == estimate.total
    assert shown["o200k_base@1"]["per_message"] == estimate.per_message and shown["o200k_base@1"]["ids"] == []
    assert shown["chatml@1"]["ids"] == chatml.encode_chat(messages, add_generation_prompt=False).ids
    costs = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#chat-messages .chat-message-cost")]
    assert costs[1] == f"chatml@1: {shown['chatml@1']['per_message'][1]} · o200k_base@1: {estimate.per_message[1]}"

    browser.find_element(By.ID, "chat-tools").send_keys("[{")
    _settle(browser)
    assert browser.find_element(By.ID, "chat-tools-error").text.startswith("Tools are not JSON")
    # Chromium logs every 4xx answer: the page asked for one it shows as an error (the estimate refusing
    # tools: 400) and none for the model without a chat format (it knows from /api/v1/models/<ref>).
    severe = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe and [message for message in severe if not message.endswith("status of 400 (Bad Request)")] == []
