// The playground's chat view: a messages editor (role, content, add/remove turns, tools as JSON, the
// generation prompt) and, per model ticked in the models list, the prompt tokens of the conversation in
// that model's chat format: the total, what each message costs, and the rendered prompt with its special
// tokens outlined. Asks /api/v1/models/<ref> for the model's chat format (once), then /api/v1/count_chat and
// /api/v1/encode_chat with detail (formats that only count, like openai-chat, have no prompt to show).
//
// Safety as in playground.js: user text reaches the DOM only through textContent. The models are the ones
// ticked in #models (playground.js owns that list; this file only reads it and listens to its changes).
// Not handled: the chat in the page's link (the fragment belongs to the text view), content parts (a
// message's content is one text here), tool calls in the editor (send them through the JSON API).
"use strict";

(function () {
  const DEBOUNCE_MS = 250;
  const ROLES = ["system", "developer", "user", "assistant", "tool"];
  const { COLOURS, el, hexBytes, appendVisibleText } = window.tokendView; // token_view.js
  const FIRST_CHAT = [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is a token?" },
  ];

  const root = document.getElementById("chat");
  const modelsBox = document.getElementById("models");
  if (!root || !modelsBox) return;

  let generation = 0;
  let timer = null;

  // -- the editor -----------------------------------------------------------------------------------------

  const list = el("ol", "chat-messages");
  list.id = "chat-messages";
  const addButton = el("button", "chat-add", "Add message");
  addButton.type = "button";
  addButton.id = "chat-add";
  const toolsBox = el("textarea", "chat-tools");
  toolsBox.id = "chat-tools";
  toolsBox.rows = 3;
  toolsBox.spellcheck = false;
  toolsBox.placeholder = '[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]';
  const generationPrompt = document.createElement("input");
  generationPrompt.type = "checkbox";
  generationPrompt.id = "chat-generation-prompt";
  generationPrompt.checked = true;
  const toolsError = el("p", "chat-input-error");
  toolsError.id = "chat-tools-error";
  const results = el("div", "chat-results");
  results.id = "chat-results";
  results.dataset.state = "loading";

  function messageRow(message) {
    const row = el("li", "chat-message");
    const role = document.createElement("select");
    role.className = "chat-role";
    for (const name of ROLES) {
      const option = el("option", null, name);
      option.value = name;
      role.appendChild(option);
    }
    role.value = message.role;
    const content = el("textarea", "chat-content");
    content.rows = 2;
    content.spellcheck = false;
    content.value = message.content;
    const remove = el("button", "chat-remove", "×");
    remove.type = "button";
    remove.title = "Remove this message";
    remove.addEventListener("click", () => {
      row.remove();
      changed();
    });
    const cost = el("span", "chat-message-cost");
    role.addEventListener("change", changed);
    content.addEventListener("input", changed);
    row.append(role, content, remove, cost);
    return row;
  }

  function buildEditor() {
    const legend = el("h2", "chat-title", "Chat");
    const hint = el("p", "hint",
      "Messages in each model's chat format: the prompt tokens a backend sends, special tokens included.");
    const toolsLabel = el("label", "chat-tools-label", "Tools (JSON list of OpenAI function tools, optional)");
    toolsLabel.htmlFor = "chat-tools";
    const promptLabel = el("label", "chat-generation-label");
    promptLabel.append(generationPrompt, document.createTextNode(" end with the assistant's header (generation prompt)"));
    root.append(legend, hint, list, addButton, toolsLabel, toolsBox, toolsError, promptLabel);
    // The per-model chat results get the page's full width, under the text view's results.
    const section = el("section", "chat-results-section");
    section.appendChild(el("h2", "chat-title", "Chat prompt tokens"));
    section.appendChild(results);
    (document.getElementById("results") || root).after(section);
    for (const message of FIRST_CHAT) list.appendChild(messageRow(message));
    addButton.addEventListener("click", () => {
      const last = list.lastElementChild;
      const role = last && last.querySelector(".chat-role").value === "user" ? "assistant" : "user";
      const row = messageRow({ role: role, content: "" });
      list.appendChild(row);
      row.querySelector(".chat-content").focus();
      changed();
    });
    toolsBox.addEventListener("input", changed);
    generationPrompt.addEventListener("change", changed);
    modelsBox.addEventListener("change", changed); // playground.js's checkboxes
  }

  function readChat() {
    const messages = [...list.querySelectorAll(".chat-message")].map((row) => ({
      role: row.querySelector(".chat-role").value,
      content: row.querySelector(".chat-content").value,
    }));
    const request = { messages: messages, add_generation_prompt: generationPrompt.checked };
    const tools = toolsBox.value.trim();
    if (tools) request.tools = JSON.parse(tools); // a SyntaxError is shown under the box
    return request;
  }

  function selectedModels() {
    return [...modelsBox.querySelectorAll('input[type="checkbox"]:checked')].map((box) => box.value);
  }

  // -- rendering ------------------------------------------------------------------------------------------

  function tokenSpan(token, index, message) {
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
    } else {
      appendVisibleText(span, token.text);
    }
    title += message === null ? " · added by the chat format" : " · message " + message;
    span.setAttribute("title", title);
    span.dataset.tokenId = String(token.id);
    span.dataset.message = message === null ? "" : String(message);
    return span;
  }

  function ownerOf(spans, index) {
    for (let message = 0; message < spans.length; message++) {
      if (index >= spans[message][0] && index < spans[message][1]) return message;
    }
    return null;
  }

  function renderColumn(ref, outcome) {
    const column = el("article", "chat-result");
    column.dataset.model = ref;
    const heading = el("h3");
    heading.appendChild(el("span", "model-name", ref));
    column.appendChild(heading);
    if (outcome.error) {
      column.appendChild(el("p", "error", outcome.error));
      return column;
    }
    const count = outcome.count;
    const total = el("span", "count", String(count.total));
    total.dataset.count = String(count.total);
    heading.append(total, el("span", "unit", count.total === 1 ? " token" : " tokens"));
    if (count.estimate) {
      column.appendChild(el("p", "chat-estimate",
        "An estimate: OpenAI's documented counting rule (the prompt layout is not published), so there is no prompt to show."));
    }
    const costs = el("ol", "chat-costs");
    count.per_message.forEach((tokens, index) => {
      const item = el("li", "chat-cost", tokens + (tokens === 1 ? " token" : " tokens"));
      item.dataset.message = String(index);
      item.dataset.tokens = String(tokens);
      costs.appendChild(item);
    });
    column.appendChild(costs);
    const overhead = count.total - count.per_message.reduce((sum, tokens) => sum + tokens, 0);
    column.appendChild(el("p", "meta", overhead + " tokens added by the format (BOS, generation prompt, …)"
      + (count.spans_exact ? "" : "; some message boundaries could not be placed")));
    if (outcome.encoding) {
      const result = outcome.encoding;
      const prompt = el("div", "tokens chat-prompt");
      result.tokens.forEach((token, index) => prompt.appendChild(tokenSpan(token, index, ownerOf(result.message_spans, index))));
      column.appendChild(prompt);
      const ids = el("details", "ids");
      ids.appendChild(el("summary", null, "token ids"));
      ids.appendChild(el("code", null, "[" + result.ids.join(", ") + "]"));
      column.appendChild(ids);
    }
    return column;
  }

  function showCosts(outcomes) {
    // Beside each message in the editor: its cost in every model that answered.
    const rows = [...list.querySelectorAll(".chat-message")];
    rows.forEach((row, index) => {
      const parts = outcomes.filter((o) => o.count).map((o) => o.ref + ": " + o.count.per_message[index]);
      row.querySelector(".chat-message-cost").textContent = parts.join(" · ");
    });
  }

  // -- requests -------------------------------------------------------------------------------------------

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) throw new Error(payload.error ? payload.error.message : "HTTP " + response.status);
    return payload;
  }

  const formats = {}; // ref -> its chat format's name, or null (a version never changes)

  async function chatFormatOf(ref) {
    if (!Object.prototype.hasOwnProperty.call(formats, ref)) {
      const response = await fetch("/api/v1/models/" + encodeURIComponent(ref));
      const payload = await response.json();
      if (!response.ok) throw new Error(payload.error ? payload.error.message : "HTTP " + response.status);
      formats[ref] = payload.chat_format;
    }
    return formats[ref];
  }

  async function chatOf(ref, chat) {
    if ((await chatFormatOf(ref)) === null) {
      return { ref: ref, error: ref + " has no chat format: its prompt layout is unknown. Give it one with "
        + "`tokend registry chat-format " + ref + " --chat-format NAME` (or --chat-template FILE)." };
    }
    const count = (await post("/api/v1/count_chat", Object.assign({ model: ref }, chat))).results[0];
    if (count.estimate) return { ref: ref, count: count };
    const encoded = await post("/api/v1/encode_chat", Object.assign({ model: ref, detail: true }, chat));
    return { ref: ref, count: count, encoding: encoded.results[0] };
  }

  async function update() {
    const mine = ++generation;
    let chat;
    try {
      chat = readChat();
      toolsError.textContent = "";
    } catch (error) {
      toolsError.textContent = "Tools are not JSON: " + error.message;
      results.replaceChildren();
      results.dataset.state = "ready";
      return;
    }
    const refs = selectedModels();
    const outcomes = await Promise.all(refs.map((ref) => chatOf(ref, chat).catch((error) => ({ ref: ref, error: error.message }))));
    if (mine !== generation) return;
    results.replaceChildren(...outcomes.map((outcome) => renderColumn(outcome.ref, outcome)));
    if (!refs.length) results.appendChild(el("p", "hint", "Pick one or more models above."));
    showCosts(outcomes);
    results.dataset.state = "ready";
  }

  function changed() {
    results.dataset.state = "loading";
    window.clearTimeout(timer);
    timer = window.setTimeout(update, DEBOUNCE_MS);
  }

  buildEditor();
  // The models list is filled by playground.js once /api/v1/models answers; render when it is.
  const waitForModels = new MutationObserver(() => {
    if (modelsBox.querySelector('input[type="checkbox"]')) {
      waitForModels.disconnect();
      changed();
    }
  });
  waitForModels.observe(modelsBox, { childList: true });
  if (modelsBox.querySelector('input[type="checkbox"]')) changed();
})();
