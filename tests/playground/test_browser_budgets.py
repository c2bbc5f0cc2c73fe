"""Token budgets on the page, in a real browser (headless Debian Chromium): hovering a token highlights the
characters it covers in the text view, hovering a character highlights the tokens that cover it (in every
model's column), and the budget slider shows where a truncation at N tokens cuts (keeping the beginning or
the end) and where chunks of at most N tokens fall. Offsets are held to tiktoken's; cuts to the engine's
(whose semantics tests/engine/test_budget*.py prove against tiktoken). Saves a screenshot of the budget
panel; with TOKEND_UPDATE_SCREENSHOT=1 it becomes docs/playground-budget.png (docs/playground.md shows it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .chromium import headless_chromium
from .conftest import OPENAI_MODELS
from .test_browser import wait_until_rendered

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground-budget.png"
# An emoji split over three tokens (cl100k), an astral letter, combining marks, paragraphs and sentences.
TEXT = "Hello world! 🤖 counts 𝔘 as e\u0301 one.\n\nSecond paragraph here. It ends now."

READ_HIGHLIGHTS = """
return {
  characters: [...document.querySelectorAll('#text-view .ch.hl')].map((span) => Number(span.dataset.index)),
  tokens: [...document.querySelectorAll('#results .tok.hl')].map(
    (span) => [span.closest('article').dataset.model, [...span.parentNode.children].indexOf(span)]),
};
"""
READ_BUDGET = """
return {
  state: document.getElementById('budget').dataset.state,
  kept: [...document.querySelectorAll('#text-view .ch.kept')].map((span) => Number(span.dataset.index)),
  cut: document.querySelectorAll('#text-view .ch.cut').length,
  marks: [...document.querySelectorAll('#text-view .cut-mark')].map((mark) => Number(mark.dataset.position)),
  summary: document.getElementById('budget-summary').textContent,
};
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile-budgets")) as driver:
        yield driver


@pytest.fixture
def page(browser, playground, registry):
    refs = [f"{name}@{registry.resolve(name).version}" for name in OPENAI_MODELS]
    browser.get("about:blank")  # a fresh document: a link differing only in its fragment would not reload
    browser.get(playground.url + f"#models={','.join(refs)}&special=disallowed&text=" + quote(TEXT))
    wait_until_rendered(browser, TEXT)
    _wait_budget(browser)
    return refs


def _wait_budget(browser) -> dict:
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(READ_BUDGET)["state"] == "ready")
    return browser.execute_script(READ_BUDGET)


def _set_budget(browser, *, tokens: int, mode: str) -> dict:
    browser.find_element(By.CSS_SELECTOR, f'input[name="budget-mode"][value="{mode}"]').click()
    browser.execute_script(
        "const slider = document.getElementById('budget-tokens'); slider.value = String(arguments[0]);"
        "slider.dispatchEvent(new Event('input', {bubbles: true}));",
        tokens,
    )
    return _wait_budget(browser)


def test_hovering_a_token_highlights_its_characters_and_a_character_its_tokens(browser, page, registry, oracle):
    for ref, name in zip(page, OPENAI_MODELS):
        offsets = registry.get_encoding(name).encode_with_offsets(TEXT)
        assert list(offsets.starts) == oracle[name].decode_with_offsets(offsets.ids)[1]
        tokens = browser.find_elements(By.CSS_SELECTOR, f'article[data-model="{ref}"] .tokens > .tok')
        assert len(tokens) == len(offsets.ids)
        for index in (0, 3, 4, 5, len(tokens) - 1):  # 3-5: the robot's tokens (cl100k splits its bytes)
            ActionChains(browser).move_to_element(tokens[index]).perform()
            shown = browser.execute_script(READ_HIGHLIGHTS)
            assert shown["characters"] == list(range(offsets.starts[index], offsets.ends[index])), (ref, index)

    robot = TEXT.index("🤖")
    character = browser.find_elements(By.CSS_SELECTOR, "#text-view .ch")[robot]
    assert character.text == "🤖"
    ActionChains(browser).move_to_element(character).perform()
    shown = browser.execute_script(READ_HIGHLIGHTS)
    expected = []
    for ref, name in zip(page, OPENAI_MODELS):
        spans = registry.get_encoding(name).encode_with_offsets(TEXT).spans()
        expected += [[ref, index] for index, (start, end) in enumerate(spans) if start <= robot < end]
    assert shown["characters"] == [robot] and shown["tokens"] == expected
    assert len([token for token in expected if token[0] == page[0]]) == 3  # cl100k: the robot is three tokens


def test_the_budget_shows_where_a_truncation_cuts(browser, page, registry, oracle):
    encoding = registry.get_encoding("cl100k_base")
    for side in ("right", "left"):
        for tokens in (0, 5, 11, 200):
            shown = _set_budget(browser, tokens=tokens, mode=side)
            expected = encoding.truncate(TEXT, tokens, side)
            assert shown["kept"] == list(range(expected.start, expected.end)), (side, tokens)
            assert shown["cut"] == len(TEXT) - (expected.end - expected.start)
            assert len(oracle["cl100k_base"].encode(expected.text)) <= tokens
            cut_at = expected.end if side == "right" else expected.start
            assert shown["marks"] == ([cut_at] if expected.truncated else [])
            assert f"{len(expected.ids)} of {expected.total_tokens} tokens" in shown["summary"]


def test_the_budget_shows_where_chunks_fall(browser, page, registry, oracle):
    encoding = registry.get_encoding("cl100k_base")
    for prefer in ("paragraph", "token"):
        browser.execute_script(
            "const select = document.getElementById('budget-prefer'); select.value = arguments[0];"
            "select.dispatchEvent(new Event('change', {bubbles: true}));",
            prefer,
        )
        shown = _set_budget(browser, tokens=9, mode="chunks")
        chunks = encoding.chunk(TEXT, 9, prefer=prefer)
        assert shown["marks"] == [chunk.start for chunk in chunks[1:]]
        assert shown["summary"] == f"{len(chunks)} chunks: " + " + ".join(str(len(c.ids)) for c in chunks) + " tokens."
        assert all(len(oracle["cl100k_base"].encode(chunk.text)) <= 9 for chunk in chunks)
    too_small = _set_budget(browser, tokens=2, mode="chunks")  # the robot alone takes 3 tokens
    assert "max_tokens >= 3" in too_small["summary"] and too_small["marks"] == []
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE" and "400" not in entry["message"]]
    assert errors == [], "the page logged errors (script failure, blocked resource)"


def test_screenshot_of_chunks_with_overlap(browser, page, registry, tmp_path):
    browser.execute_script("document.getElementById('budget-overlap').value = '3';")
    shown = _set_budget(browser, tokens=12, mode="chunks")
    chunks = registry.get_encoding("cl100k_base").chunk(TEXT, 12, 3)
    assert shown["marks"] == [chunk.start for chunk in chunks[1:]]
    overlapping = browser.execute_script("return document.querySelectorAll('#text-view .ch.overlap').length")
    assert overlapping == sum(max(0, previous.end - chunk.start) for previous, chunk in zip(chunks, chunks[1:]))
    token = browser.find_elements(By.CSS_SELECTOR, f'article[data-model="{page[0]}"] .tokens > .tok')[4]
    ActionChains(browser).move_to_element(token).perform()
    screenshot = tmp_path / "playground-budget.png"
    panel = browser.find_element(By.ID, "budget")
    browser.execute_script("arguments[0].scrollIntoView();", panel)
    assert panel.screenshot(str(screenshot)) and screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("TOKEND_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
