// The token playground page: reads the text, models and special-token policy, asks /api/v1/encode once per
// model, and renders each token as a coloured span with its id and bytes in the title.
//
// Safety: user text only ever reaches the DOM through textContent / setAttribute (never parsed as HTML), and
// the server's Content-Security-Policy forbids inline script; so typed text cannot become markup.
// State lives in the URL fragment (#text=…&models=…&special=…): a copied link reproduces the view, and the
// text is never sent to the server in a URL (fragments stay in the browser).
// Not handled: decode in the page (use the JSON API), very large texts (the API limits per-token detail).
"use strict";

(function () {
  const DEBOUNCE_MS = 150;
  const { COLOURS, el, hexBytes, appendVisibleText } = window.tokendView; // token_view.js
  const POLICIES = {
    disallowed: {}, // tiktoken's defaults: nothing allowed, everything disallowed
    allowed: { allowed_special: "all" },
    ordinary: { allowed_special: [], disallowed_special: [] },
  };

  const textBox = document.getElementById("text");
  const modelsBox = document.getElementById("models");
  const modelsStatus = document.getElementById("models-status");
  const results = document.getElementById("results");
  const summary = document.getElementById("summary");
  const permalink = document.getElementById("permalink");

  let selected = []; // model refs ("name@version") in the order the user picked them
  let generation = 0; // bumps on every change; responses for an older generation are dropped
  let timer = null;

  function policy() {
    const checked = document.querySelector('input[name="special"]:checked');
    return checked ? checked.value : "disallowed";
  }

  // -- URL state -----------------------------------------------------------------------------------------

  function readFragment() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    return {
      text: params.get("text"),
      models: (params.get("models") || "").split(",").filter(Boolean),
      special: params.get("special"),
    };
  }

  function writeFragment() {
    const params = new URLSearchParams();
    params.set("text", textBox.value);
    params.set("models", selected.join(","));
    params.set("special", policy());
    const url = window.location.pathname + "#" + params.toString();
    window.history.replaceState(null, "", url);
    permalink.href = url;
  }

  // -- rendering -----------------------------------------------------------------------------------------

  function tokenSpan(token, index, offsets) {
    const span = el("span", "tok c" + (index % COLOURS));
    const bytes = hexBytes(token.hex);
    let title = "id " + token.id + " · bytes " + (bytes || "(none)");
    if (token.special) {
      span.classList.add("special");
      span.textContent = token.text;
      title += " · special token";
    } else if (token.text === null) {
      span.classList.add("partial");
      span.textContent = "‹" + bytes + "›";
      title += " · part of a UTF-8 character";
    } else {
      appendVisibleText(span, token.text);
    }
    span.setAttribute("title", title);
    span.dataset.tokenId = String(token.id);
    span.dataset.hex = token.hex;
    if (offsets) {
      // Characters (code points) of the text this token covers; budgets.js highlights them on hover.
      span.dataset.start = String(offsets[0]);
      span.dataset.end = String(offsets[1]);
    }
    return span;
  }

  function modelColumn(ref) {
    const column = el("article", "model-result");
    column.dataset.model = ref;
    const heading = el("h2");
    heading.appendChild(el("span", "model-name", ref));
    column.appendChild(heading);
    return column;
  }

  function renderResult(column, response, text) {
    const result = response.results[0];
    const heading = column.querySelector("h2");
    const count = el("span", "count", String(response.total_tokens));
    count.dataset.count = String(response.total_tokens);
    heading.appendChild(count);
    heading.appendChild(el("span", "unit", response.total_tokens === 1 ? " token" : " tokens"));
    const chars = [...text].length;
    column.appendChild(el("p", "meta",
      chars + " characters · " +
      (chars ? (chars / Math.max(response.total_tokens, 1)).toFixed(2) : "0") + " characters per token"));
    const tokens = el("div", "tokens");
    result.tokens.forEach((token, index) => tokens.appendChild(tokenSpan(token, index, result.offsets && result.offsets[index])));
    column.appendChild(tokens);
    const ids = el("details", "ids");
    ids.appendChild(el("summary", null, "token ids"));
    ids.appendChild(el("code", null, "[" + result.ids.join(", ") + "]"));
    column.appendChild(ids);
  }

  function renderError(column, message) {
    column.classList.add("failed");
    column.appendChild(el("p", "error", message));
  }

  function renderSummary(counts) {
    summary.replaceChildren();
    for (const [ref, count] of counts) {
      const item = el("span", "summary-item");
      item.appendChild(el("span", "model-name", ref));
      item.appendChild(el("strong", null, count === null ? "error" : String(count)));
      summary.appendChild(item);
    }
  }

  // -- requests ------------------------------------------------------------------------------------------

  async function encode(ref, text) {
    const body = Object.assign({ model: ref, text: text, detail: true, offsets: true }, POLICIES[policy()]);
    const response = await fetch("/api/v1/encode", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error ? payload.error.message : "HTTP " + response.status);
    return payload;
  }

  async function update() {
    const mine = ++generation;
    const text = textBox.value;
    const refs = selected.slice();
    writeFragment();
    const outcomes = await Promise.all(refs.map((ref) => encode(ref, text).then(
      (response) => ({ ref, response }),
      (error) => ({ ref, error }),
    )));
    if (mine !== generation) return; // a newer change is already on its way
    results.replaceChildren();
    const counts = [];
    for (const outcome of outcomes) {
      const column = modelColumn(outcome.ref);
      if (outcome.error) {
        renderError(column, outcome.error.message);
        counts.push([outcome.ref, null]);
      } else {
        renderResult(column, outcome.response, text);
        counts.push([outcome.ref, outcome.response.total_tokens]);
      }
      results.appendChild(column);
    }
    if (!refs.length) results.appendChild(el("p", "hint", "Pick one or more models above."));
    renderSummary(counts);
    results.dataset.state = "ready";
    // budgets.js (the text view, hover highlights, the budget slider) follows every render.
    document.dispatchEvent(new CustomEvent("tokend:rendered", {
      detail: { text: text, counts: counts, special: POLICIES[policy()] },
    }));
  }

  function changed() {
    results.dataset.state = "loading"; // at once, so a reader never mistakes the old view for the new one
    window.clearTimeout(timer);
    timer = window.setTimeout(update, DEBOUNCE_MS);
  }

  // -- models --------------------------------------------------------------------------------------------

  function modelCheckbox(ref, aliases) {
    const label = el("label", "model-choice");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = ref;
    box.checked = selected.includes(ref);
    box.addEventListener("change", () => {
      selected = selected.filter((item) => item !== ref);
      if (box.checked) selected.push(ref);
      changed();
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + ref));
    if (aliases.length) label.appendChild(el("span", "aliases", " (" + aliases.join(", ") + ")"));
    return label;
  }

  async function loadModels(wanted) {
    const response = await fetch("/api/v1/models");
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error ? payload.error.message : "HTTP " + response.status);
    const refs = [];
    const aliasesOf = {};
    for (const model of payload.models) {
      for (const version of model.versions) {
        const ref = model.name + "@" + version;
        refs.push(ref);
        aliasesOf[ref] = Object.entries(model.aliases).filter(([, v]) => v === version).map(([alias]) => alias);
        if (version === model.latest_version) aliasesOf[ref].unshift("latest");
      }
    }
    const missing = wanted.filter((ref) => !refs.includes(ref));
    selected = wanted.filter((ref) => refs.includes(ref));
    if (!wanted.length) {
      // First visit: the latest version of the first two models.
      selected = payload.models.slice(0, 2).map((model) => model.name + "@" + model.latest_version);
    }
    modelsStatus.remove();
    for (const ref of refs) modelsBox.appendChild(modelCheckbox(ref, aliasesOf[ref]));
    if (missing.length) {
      modelsBox.appendChild(el("p", "hint", "Not in this registry (dropped from the link): " + missing.join(", ")));
    }
  }

  function applyState(state) {
    textBox.value = state.text !== null ? state.text : "Hello world! Tokenizers split text into tokens.";
    const special = Object.prototype.hasOwnProperty.call(POLICIES, state.special) ? state.special : "disallowed";
    for (const radio of document.querySelectorAll('input[name="special"]')) radio.checked = radio.value === special;
  }

  async function start() {
    const state = readFragment();
    applyState(state);
    try {
      await loadModels(state.models);
    } catch (error) {
      modelsStatus.textContent = "Could not list models: " + error.message;
      modelsStatus.classList.add("error");
    }
    textBox.addEventListener("input", changed);
    for (const radio of document.querySelectorAll('input[name="special"]')) radio.addEventListener("change", changed);
    window.addEventListener("hashchange", () => {
      // A link pasted into this tab: take over its text, policy and models.
      const next = readFragment();
      applyState(next);
      const known = [...modelsBox.querySelectorAll('input[type="checkbox"]')].map((box) => box.value);
      selected = next.models.filter((ref) => known.includes(ref));
      for (const box of modelsBox.querySelectorAll('input[type="checkbox"]')) box.checked = selected.includes(box.value);
      changed();
    });
    await update();
  }

  start();
})();
