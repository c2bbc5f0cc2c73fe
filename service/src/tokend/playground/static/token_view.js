// What the page's three views share to show tokens (loaded first; playground.js, budgets.js and chat.js read
// window.tokendView): building nodes, whitespace shown as marks, a token's bytes as hex pairs.
//
//   const { el, appendVisibleText } = window.tokendView;
//   const span = el("span", "tok c0");
//   appendVisibleText(span, "a b\n");   // "a", a "·" mark, "b", a "↵" mark and a line break
//
// Safety: text reaches the DOM only through textContent (never parsed as HTML).
"use strict";

window.tokendView = (function () {
  const COLOURS = 6; // tokens alternate classes c0..c5
  const WHITESPACE = { " ": "·", "\t": "→", "\n": "↵", "\r": "␍", "\f": "␌", "\v": "␋", "\u00a0": "⍽" };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function isWhitespace(ch) {
    return Object.prototype.hasOwnProperty.call(WHITESPACE, ch);
  }

  // "e8aa" -> "e8 aa"
  function hexBytes(hex) {
    return (hex.match(/../g) || []).join(" ");
  }

  // The visible form of a token's text: whitespace as marks, newlines also break the line.
  function appendVisibleText(span, text) {
    let run = "";
    const flush = () => {
      if (run) span.appendChild(document.createTextNode(run));
      run = "";
    };
    for (const ch of text) {
      if (isWhitespace(ch)) {
        flush();
        span.appendChild(el("span", "ws", WHITESPACE[ch]));
        if (ch === "\n") span.appendChild(document.createElement("br"));
      } else {
        run += ch;
      }
    }
    flush();
  }

  return Object.freeze({ COLOURS, WHITESPACE, el, isWhitespace, hexBytes, appendVisibleText });
})();
