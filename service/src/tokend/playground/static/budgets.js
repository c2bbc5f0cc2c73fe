// Token budgets on the playground page: the text shown character by character, tokens ↔ characters
// highlighted both ways on hover, and a budget slider that shows where a truncation at N tokens cuts (keeping
// the beginning or the end) or where chunks of at most N tokens fall (with overlap and preferred cut places).
//
// It follows playground.js: after each render that script sends "tokend:rendered" with the text, the models'
// counts and the special-token policy; token spans carry data-start / data-end (characters of the text, code
// points, from /api/v1/encode with "offsets": true). The budget asks /api/v1/truncate and /api/v1/chunk.
// Safety as in playground.js: text reaches the DOM through textContent only.
// Not handled: texts over VIEW_LIMIT characters (no text view; hover and budget need it).
"use strict";

(function () {
  const VIEW_LIMIT = 20000; // characters the text view shows one span each
  const DEBOUNCE_MS = 120;
  const { WHITESPACE, el, isWhitespace } = window.tokendView; // token_view.js

  const budget = document.getElementById("budget");
  const view = document.getElementById("text-view");
  const modelSelect = document.getElementById("budget-model");
  const slider = document.getElementById("budget-tokens");
  const sliderValue = document.getElementById("budget-value");
  const overlapBox = document.getElementById("budget-overlap");
  const preferSelect = document.getElementById("budget-prefer");
  const summary = document.getElementById("budget-summary");
  const results = document.getElementById("results");

  let current = { text: "", counts: [], special: {} };
  let characters = []; // code point index -> its span in the text view
  let generation = 0;
  let timer = null;

  function mode() {
    const checked = document.querySelector('input[name="budget-mode"]:checked');
    return checked ? checked.value : "right";
  }

  // -- the text view -----------------------------------------------------------------------------------------

  function renderView(text) {
    view.replaceChildren();
    characters = [];
    const points = Array.from(text); // code points: the API's character offsets index these
    if (points.length > VIEW_LIMIT) {
      view.appendChild(el("p", "hint", "The text has " + points.length + " characters; the view shows up to " + VIEW_LIMIT + "."));
      return false;
    }
    points.forEach((point, index) => {
      const whitespace = isWhitespace(point);
      const span = el("span", whitespace ? "ch ws" : "ch", whitespace ? WHITESPACE[point] : point);
      span.dataset.index = String(index);
      characters.push(span);
      view.appendChild(span);
      if (point === "\n") view.appendChild(document.createElement("br"));
    });
    return true;
  }

  // -- hover: token → characters, character → tokens ---------------------------------------------------------

  function clearHighlights() {
    for (const node of document.querySelectorAll(".hl")) node.classList.remove("hl");
  }

  function highlightToken(span) {
    clearHighlights();
    span.classList.add("hl");
    const start = Number(span.dataset.start);
    const end = Number(span.dataset.end);
    for (let index = start; index < end && index < characters.length; index++) characters[index].classList.add("hl");
  }

  function highlightCharacter(span) {
    clearHighlights();
    span.classList.add("hl");
    const index = Number(span.dataset.index);
    for (const token of results.querySelectorAll(".tok[data-start]")) {
      if (Number(token.dataset.start) <= index && index < Number(token.dataset.end)) token.classList.add("hl");
    }
  }

  results.addEventListener("mouseover", (event) => {
    const token = event.target.closest(".tok[data-start]");
    if (token) highlightToken(token);
  });
  view.addEventListener("mouseover", (event) => {
    const character = event.target.closest(".ch");
    if (character) highlightCharacter(character);
  });
  results.addEventListener("mouseleave", clearHighlights);
  view.addEventListener("mouseleave", clearHighlights);

  // -- the budget --------------------------------------------------------------------------------------------

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign(body, current.special)),
    });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error ? payload.error.message : "HTTP " + response.status);
    return payload;
  }

  function clearBudget() {
    for (const mark of view.querySelectorAll(".cut-mark")) mark.remove();
    for (const span of characters) span.classList.remove("kept", "cut", "chunk-a", "chunk-b", "overlap");
  }

  function mark(position, label) {
    const marker = el("span", "cut-mark", "│");
    marker.dataset.position = String(position);
    marker.setAttribute("title", label);
    if (position < characters.length) view.insertBefore(marker, characters[position]);
    else view.appendChild(marker);
  }

  function showTruncation(result, side, total) {
    characters.forEach((span, index) => span.classList.add(result.start <= index && index < result.end ? "kept" : "cut"));
    const at = side === "right" ? result.end : result.start;
    if (result.truncated) mark(at, "cut at character " + at);
    summary.textContent = (result.truncated ? "Keeps " : "Fits whole: ") + result.token_count + " of " + total +
      " tokens, characters " + result.start + "–" + result.end + (side === "right" ? " (the beginning)." : " (the end).");
  }

  function showChunks(chunks) {
    chunks.forEach((chunk, number) => {
      for (let index = chunk.start; index < chunk.end && index < characters.length; index++) {
        const span = characters[index];
        if (span.classList.contains("chunk-a") || span.classList.contains("chunk-b")) span.classList.add("overlap");
        span.classList.add(number % 2 ? "chunk-b" : "chunk-a");
      }
      if (number > 0) mark(chunk.start, "chunk " + (number + 1) + " starts at character " + chunk.start);
    });
    summary.textContent = chunks.length + (chunks.length === 1 ? " chunk: " : " chunks: ") +
      chunks.map((chunk) => chunk.token_count).join(" + ") + " tokens.";
  }

  async function updateBudget() {
    const mine = ++generation;
    const ref = modelSelect.value;
    const text = current.text;
    const maxTokens = Number(slider.value);
    sliderValue.textContent = String(maxTokens);
    const chosen = mode();
    try {
      let payload;
      if (chosen === "chunks") {
        payload = await post("/api/v1/chunk", {
          model: ref, text: text, max_tokens: Math.max(1, maxTokens),
          overlap: Math.min(Number(overlapBox.value) || 0, Math.max(0, maxTokens - 1)), prefer: preferSelect.value,
        });
      } else {
        payload = await post("/api/v1/truncate", { model: ref, text: text, max_tokens: maxTokens, side: chosen });
      }
      if (mine !== generation) return;
      clearBudget();
      if (chosen === "chunks") showChunks(payload.results[0].chunks);
      else showTruncation(payload.results[0], chosen, payload.results[0].total_tokens);
    } catch (error) {
      if (mine !== generation) return;
      clearBudget();
      summary.textContent = "Budget: " + error.message;
    }
    budget.dataset.state = "ready";
  }

  function budgetChanged() {
    budget.dataset.state = "loading";
    sliderValue.textContent = slider.value;
    window.clearTimeout(timer);
    timer = window.setTimeout(updateBudget, DEBOUNCE_MS);
  }

  function resetSlider() {
    const entry = current.counts.find(([ref]) => ref === modelSelect.value);
    const total = entry && entry[1] !== null ? entry[1] : 0;
    slider.min = mode() === "chunks" ? "1" : "0";
    slider.max = String(Math.max(1, total));
    if (Number(slider.value) > total || slider.dataset.model !== modelSelect.value) {
      slider.value = String(Math.max(Number(slider.min), Math.ceil(total / 2)));
    }
    slider.dataset.model = modelSelect.value;
  }

  function renderModels(counts) {
    const previous = modelSelect.value;
    modelSelect.replaceChildren();
    for (const [ref, count] of counts) {
      if (count === null) continue; // the model answered with an error: nothing to budget
      const option = el("option", null, ref);
      option.value = ref;
      modelSelect.appendChild(option);
    }
    if ([...modelSelect.options].some((option) => option.value === previous)) modelSelect.value = previous;
  }

  document.addEventListener("tokend:rendered", (event) => {
    current = event.detail;
    const shown = renderView(current.text);
    renderModels(current.counts);
    if (!shown || !modelSelect.value) {
      summary.textContent = shown ? "Pick a model that can encode the text to see a budget." : "";
      budget.dataset.state = "ready";
      return;
    }
    resetSlider();
    budgetChanged();
  });

  slider.addEventListener("input", budgetChanged);
  overlapBox.addEventListener("input", budgetChanged);
  preferSelect.addEventListener("change", budgetChanged);
  modelSelect.addEventListener("change", () => { resetSlider(); budgetChanged(); });
  for (const radio of document.querySelectorAll('input[name="budget-mode"]')) {
    radio.addEventListener("change", () => { resetSlider(); budgetChanged(); });
  }
})();
