"""The page in a real browser (headless Debian Chromium): a user types text, picks two models and the
special-token policy; the rendered tokens and counts must be tiktoken's and the engine's; the link reproduces
the view; typed markup stays text. Saves a screenshot; with TOKEND_UPDATE_SCREENSHOT=1 it becomes
docs/playground.png, the one the README shows (a plain test run never writes into the checkout)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from .chromium import headless_chromium
from .conftest import OPENAI_MODELS

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground.png"
# English, German (where the two models differ), code with indentation, newlines, IPA letters and an arrow
# that both models split inside their UTF-8 bytes (shown as bytes), and a special token. Only BMP characters:
# chromedriver cannot type others.
TEXT = (
    "Why does my prompt cost 40 tokens?\n"
    "Deutsch: Der Tokenizer zerlegt Wörter in Stücke.\n"
    "    def count(text): return len(enc.encode(text))\n"
    "IPA /ʃɪp/ ⇔ ship<|endoftext|>"
)
VISIBLE = {" ": "·", "\t": "→", "\n": "↵", "\r": "␍"}

# One round trip for everything the test reads about the rendered tokens of one model.
READ_COLUMN = """
const column = document.querySelector(`article[data-model="${arguments[0]}"]`);
if (!column) return null;
return {
  count: column.querySelector(".count") ? column.querySelector(".count").textContent : null,
  error: column.querySelector(".error") ? column.querySelector(".error").textContent : null,
  tokens: [...column.querySelectorAll(".tokens > .tok")].map((span) => ({
    id: Number(span.dataset.tokenId), title: span.title, text: span.textContent,
    special: span.classList.contains("special"), partial: span.classList.contains("partial"),
  })),
};
"""


def wait_until_rendered(driver, text: str) -> None:
    """Until the page has rendered exactly `text` (the fragment is written when that render starts)."""

    def rendered(driver) -> bool:
        return driver.execute_script(
            "return document.getElementById('results').dataset.state === 'ready' && "
            "new URLSearchParams(location.hash.slice(1)).get('text') === arguments[0];",
            text,
        )

    WebDriverWait(driver, 20).until(rendered, f"the page did not render {text!r}")


def type_text(driver, text: str) -> None:
    box = driver.find_element(By.ID, "text")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)
    wait_until_rendered(driver, text)


def choose_models(driver, refs: list[str]) -> None:
    for box in driver.find_elements(By.CSS_SELECTOR, "#models input[type=checkbox]"):
        if box.is_selected() != (box.get_attribute("value") in refs):
            box.click()


def expected_title(token_id: int, data: bytes, *, special: bool) -> str:
    title = f"id {token_id} · bytes {' '.join(f'{byte:02x}' for byte in data)}"
    if special:
        return title + " · special token"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return title + " · part of a UTF-8 character"
    return title


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def test_typed_text_renders_tiktokens_tokens_and_counts_for_two_models(browser, playground, registry, oracle, tmp_path):
    refs = [f"{name}@{registry.resolve(name).version}" for name in OPENAI_MODELS]
    browser.get(playground.url)
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#models input[type=checkbox]"))
    choose_models(browser, refs)
    browser.find_element(By.CSS_SELECTOR, 'input[name="special"][value="allowed"]').click()
    type_text(browser, TEXT)

    for name, ref in zip(OPENAI_MODELS, refs):
        column = browser.execute_script(READ_COLUMN, ref)
        assert column is not None, f"no column for {ref}"
        expected = oracle[name].encode(TEXT, allowed_special="all")
        assert [token["id"] for token in column["tokens"]] == expected
        assert expected == registry.get_encoding(name).encode(TEXT, allowed_special="all")
        assert column["count"] == str(len(expected))
        for token in column["tokens"]:
            data = oracle[name].decode_single_token_bytes(token["id"])
            special = token["id"] == oracle[name].eot_token
            assert token["title"] == expected_title(token["id"], data, special=special)
            assert token["special"] == special
            if special:
                assert token["text"] == "<|endoftext|>"
            elif token["partial"]:
                assert token["text"] == "‹" + " ".join(f"{byte:02x}" for byte in data) + "›"
            else:
                assert token["text"] == "".join(VISIBLE.get(char, char) for char in data.decode("utf-8"))
        assert any(token["partial"] for token in column["tokens"]), "ʃ and ⇔ are split inside their bytes"
        assert [token["special"] for token in column["tokens"]].count(True) == 1

    summary = browser.execute_script(
        "return [...document.querySelectorAll('#summary .summary-item')]"
        ".map((item) => [item.querySelector('.model-name').textContent, item.querySelector('strong').textContent]);"
    )
    assert summary == [[ref, str(len(oracle[name].encode(TEXT, allowed_special="all")))]
                       for name, ref in zip(OPENAI_MODELS, refs)]
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], "the page logged errors (script failure, blocked resource, failed request)"
    screenshot = tmp_path / "playground.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("TOKEND_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


def test_the_link_reproduces_the_view(browser, playground, registry, oracle):
    refs = [f"{name}@{registry.resolve(name).version}" for name in OPENAI_MODELS]
    browser.get(playground.url)
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#models input[type=checkbox]"))
    choose_models(browser, refs[1:])
    browser.find_element(By.CSS_SELECTOR, 'input[name="special"][value="ordinary"]').click()
    text = "linked <|endoftext|> view"
    type_text(browser, text)
    link = browser.find_element(By.ID, "permalink").get_attribute("href")

    browser.get("about:blank")  # a fresh document: nothing survives but the link
    browser.get(link)
    wait_until_rendered(browser, text)
    assert browser.find_element(By.ID, "text").get_attribute("value") == text
    checked = [box.get_attribute("value") for box in browser.find_elements(By.CSS_SELECTOR, "#models input:checked")]
    assert checked == refs[1:]
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="special"]:checked').get_attribute("value") == "ordinary"
    column = browser.execute_script(READ_COLUMN, refs[1])
    assert [token["id"] for token in column["tokens"]] == oracle["o200k_base"].encode(text, disallowed_special=())
    assert not any(token["special"] for token in column["tokens"])


def test_disallowed_special_token_shows_the_apis_error(browser, playground, registry):
    ref = f"cl100k_base@{registry.resolve('cl100k_base').version}"
    browser.get(playground.url + f"#models={ref}&special=disallowed&text=" + "ok%20%3C%7Cendoftext%7C%3E")
    wait_until_rendered(browser, "ok <|endoftext|>")
    column = browser.execute_script(READ_COLUMN, ref)
    assert column["tokens"] == [] and column["count"] is None
    assert "<|endoftext|>" in column["error"] and "character 3" in column["error"]


def test_typed_markup_stays_text(browser, playground, registry, oracle):
    ref = f"cl100k_base@{registry.resolve('cl100k_base').version}"
    browser.get(playground.url + f"#models={ref}&text=")
    wait_until_rendered(browser, "")
    markup = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    type_text(browser, markup)
    assert browser.title == "tokend · token playground"
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #results script") == []
    column = browser.execute_script(READ_COLUMN, ref)
    assert [token["id"] for token in column["tokens"]] == oracle["cl100k_base"].encode(markup)
    assert "".join(token["text"] for token in column["tokens"]).replace("·", " ") == markup
