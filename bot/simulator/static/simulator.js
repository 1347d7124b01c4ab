// The simulator page: send as a WhatsApp user, show what the bot sent back.
// All message text goes through text nodes and textContent (never innerHTML): it is
// untrusted. Icons are inline SVG drawn here, not emoji a system may have no font for.
"use strict";

(() => {
  const POLL_MS = 500;
  const NUMBER_KEY = "simulator.number";
  const E164 = /^\+[1-9]\d{6,14}$/;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    document: ["M6 2.5h8l5 5v14H6z", "M14 2.5v5h5", "M9 12.5h7", "M9 16.5h7"],
    list: ["M4 6h16", "M4 12h16", "M4 18h16"],
  };
  // http(s) links in message text; punctuation closing a sentence is not part of them.
  const URL_PATTERN = /https?:\/\/[^\s<>"']+/gi;
  const URL_TRAILING = /[.,;:!?)\]}]+$/;

  const $ = (id) => document.getElementById(id);
  const state = { number: "", after: -1, generation: 0, timer: 0 };

  /** An element with a class and, optionally, plain text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  /** A line icon (inline SVG, so it needs no font); decorative, hidden from screen readers. */
  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "icon icon-" + name);
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    }
    return svg;
  }

  /** A link that opens in a new tab and tells the target nothing about this page. */
  function link(href, className) {
    const a = el("a", className);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function webUrl(candidate) {
    try {
      const url = new URL(candidate);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  /** Message text as text nodes, with its http(s) URLs as links. */
  function richText(text) {
    const box = el("div", "text");
    const value = text || "";
    let last = 0;
    for (const match of value.matchAll(URL_PATTERN)) {
      const shown = match[0].replace(URL_TRAILING, "");
      const href = webUrl(shown);
      if (!href) continue;
      box.append(value.slice(last, match.index));
      const a = link(href, "text-link");
      a.textContent = shown;
      box.append(a);
      last = match.index + shown.length;
    }
    box.append(value.slice(last));
    return box;
  }

  function clock(seconds) {
    const date = seconds ? new Date(seconds * 1000) : new Date();
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  /** Keep the newest message in view unless the user scrolled up to read. */
  function append(node) {
    const pane = $("messages");
    const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 80;
    pane.appendChild(node);
    if (atBottom) pane.scrollTop = pane.scrollHeight;
  }

  function bubble(className, text, seconds) {
    const box = el("div", "bubble " + className);
    box.appendChild(richText(text));
    box.appendChild(el("div", "time", clock(seconds)));
    return box;
  }

  /** A file: its icon and name, a link that opens it when the simulator holds it. */
  function documentBubble(message) {
    const box = el("div", "bubble incoming kind-document");
    const name = el("div", "text");
    const file = message.url ? link(message.url, "document-link") : el("span", "document-link");
    file.appendChild(icon("document"));
    file.appendChild(el("span", "document-name", message.text));
    name.appendChild(file);
    box.appendChild(name);
    box.appendChild(el("div", "time", clock(message.at)));
    return box;
  }

  function renderUser(text, seconds, failed) {
    const row = el("div", "user-message");
    const box = bubble("outgoing", text, seconds);
    if (failed) box.classList.add("failed");
    row.appendChild(box);
    append(row);
    return box;
  }

  function renderNote(text) {
    append(el("div", "system-note", text));
  }

  function replyButton(className, id, title, onClick) {
    const button = el("button", className);
    button.type = "button";
    button.dataset.id = id;
    button.dataset.title = title;
    button.addEventListener("click", onClick);
    return button;
  }

  function renderButtons(container, buttons) {
    const actions = el("div", "actions");
    for (const b of buttons) {
      const button = replyButton("reply-button", b.id, b.title, () =>
        sendReply("button_reply", b.id, b.title),
      );
      button.textContent = b.title;
      actions.appendChild(button);
    }
    container.appendChild(actions);
  }

  function renderList(container, list) {
    const actions = el("div", "actions");
    const open = el("button", "list-open");
    open.type = "button";
    open.append(icon("list"), list.button);
    open.setAttribute("aria-expanded", "false");
    const rows = el("div", "list-rows");
    rows.hidden = true;
    let section = "";
    for (const r of list.rows) {
      if (r.section && r.section !== section) {
        section = r.section;
        rows.appendChild(el("div", "list-section", section));
      }
      const row = replyButton("list-row", r.id, r.title, () => {
        rows.hidden = true;
        open.setAttribute("aria-expanded", "false");
        sendReply("list_reply", r.id, r.title, r.description);
      });
      row.appendChild(el("span", "row-title", r.title));
      if (r.description) row.appendChild(el("span", "row-description", r.description));
      rows.appendChild(row);
    }
    open.addEventListener("click", () => {
      rows.hidden = !rows.hidden;
      open.setAttribute("aria-expanded", String(!rows.hidden));
      if (!rows.hidden) rows.scrollIntoView({ block: "nearest" });
    });
    actions.appendChild(open);
    actions.appendChild(rows);
    container.appendChild(actions);
  }

  function renderBot(message) {
    const row = el("div", "bot-message");
    row.dataset.index = String(message.index);
    row.dataset.kind = message.kind;
    const box =
      message.kind === "document"
        ? documentBubble(message)
        : bubble("incoming kind-" + message.kind, message.text, message.at);
    if (message.header) box.prepend(el("div", "header", message.header));
    if (message.footer) box.insertBefore(el("div", "footer", message.footer), box.lastChild);
    row.appendChild(box);
    if (message.buttons && message.buttons.length) renderButtons(row, message.buttons);
    if (message.list) renderList(row, message.list);
    append(row);
  }

  async function post(payload) {
    const response = await fetch("/simulator/api/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || "send failed: HTTP " + response.status);
    if (data.status !== 200) throw new Error("the bot answered the webhook with " + data.status);
  }

  /** Show the message at once, then deliver it; mark it if delivery failed. */
  async function deliver(shown, payload) {
    const box = renderUser(shown);
    try {
      await post(payload);
      showError("");
    } catch (err) {
      box.classList.add("failed");
      showError(err.message);
    }
  }

  function sendReply(type, id, title, description) {
    if (!state.number) return;
    const reply = { type, id, title };
    if (description) reply.description = description;
    deliver(title, { from: state.number, reply });
  }

  function sendText(event) {
    event.preventDefault();
    const input = $("text");
    const text = input.value;
    if (!text.trim() || !state.number) return;
    input.value = "";
    input.focus();
    deliver(text, { from: state.number, text });
  }

  async function poll() {
    const generation = state.generation;
    try {
      const query = new URLSearchParams({ to: state.number, after: String(state.after) });
      const response = await fetch("/simulator/api/messages?" + query);
      if (!response.ok) throw new Error("could not load messages: HTTP " + response.status);
      const messages = await response.json();
      if (generation !== state.generation) return;
      for (const message of messages) {
        renderBot(message);
        state.after = Math.max(state.after, message.index);
      }
    } catch (err) {
      if (generation === state.generation) showError(err.message);
      // The bot restarted or went away: keep polling quietly, it may come back.
    } finally {
      if (generation === state.generation) state.timer = setTimeout(poll, POLL_MS);
    }
  }

  /** The conversation so far, both sides, as the simulator holds it; then poll for more. */
  async function load() {
    const generation = state.generation;
    try {
      const query = new URLSearchParams({ number: state.number });
      const response = await fetch("/simulator/api/conversation?" + query);
      if (!response.ok) throw new Error("could not load the chat: HTTP " + response.status);
      const data = await response.json();
      if (generation !== state.generation) return;
      for (const message of data.messages) {
        if (message.from === "you") renderUser(message.text, message.at, message.failed);
        else renderBot(message);
      }
      state.after = Math.max(state.after, data.after);
    } catch (err) {
      if (generation === state.generation) showError(err.message);
    }
    if (generation === state.generation) poll();
  }

  /** Start the conversation of another number: new pane, its earlier messages. */
  function useNumber() {
    const value = $("number").value.replace(/[\s().-]/g, "");
    clearTimeout(state.timer);
    state.generation += 1;
    $("messages").replaceChildren();
    if (!E164.test(value)) {
      state.number = "";
      $("chat-number").textContent = "no number";
      showError("Enter your number with + and country code, like +447700900123.");
      return;
    }
    showError("");
    state.number = value;
    state.after = -1;
    $("number").value = value;
    $("chat-number").textContent = "you are " + value;
    try {
      localStorage.setItem(NUMBER_KEY, value);
    } catch (_) {
      // Storage may be disabled; the default number still works.
    }
    renderNote("Chatting as " + value + ". Say hello to start.");
    load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    try {
      const saved = localStorage.getItem(NUMBER_KEY);
      if (saved) $("number").value = saved;
    } catch (_) {
      // Ignore: use the default number.
    }
    $("number").addEventListener("change", useNumber);
    $("composer").addEventListener("submit", sendText);
    useNumber();
  });
})();
