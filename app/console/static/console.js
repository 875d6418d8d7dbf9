// The console's few live parts: dashboard refresh, prompt check, delete confirmation, the Kakao simulator, chat.
// Plain JavaScript, no library; every request goes to this server with the session's CSRF token.
"use strict";

const csrf = () => document.body.dataset.csrf || "";

async function post(url, body, json = true) {
  const headers = { "X-CSRF-Token": csrf() };
  if (json) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method: "POST", headers, body: json ? JSON.stringify(body) : body,
                                       credentials: "same-origin" });
  if (response.status === 401) { window.location.href = "/console/login"; throw new Error("logged out"); }
  return response;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// Dashboard: swap in fresh numbers every few seconds.
function startRefresh(panel) {
  const every = Number(panel.dataset.every) || 10000;
  setInterval(async () => {
    if (document.hidden) return;
    const response = await fetch(panel.dataset.refresh, { credentials: "same-origin" });
    if (response.ok) panel.innerHTML = await response.text();
  }, every);
}

// Prompts: check the placeholders while typing.
function startPromptCheck(area) {
  const hint = document.getElementById("prompt-check");
  let timer = null;
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const form = new URLSearchParams({ system_prompt: area.value });
      const response = await post(area.dataset.check, form, false);
      const result = await response.json();
      hint.textContent = result.ok ? result.message : "변수 오류: " + result.message;
      hint.classList.toggle("bad", !result.ok);
    }, 300);
  });
}

// --- simulator ---------------------------------------------------------------------------------------

function kakaoButtons(buttons, send) {
  const row = el("div", "card-buttons");
  for (const button of buttons || []) {
    const b = el("button", "kakao-button", button.label);
    b.type = "button";
    if (button.action === "message" || button.action === "block") {
      b.addEventListener("click", () => send(button.messageText || button.label));
    } else {
      b.disabled = true;
      b.title = button.webLinkUrl || button.phoneNumber || button.action;
    }
    row.append(b);
  }
  return row;
}

function kakaoCard(card, send) {
  const box = el("div", "bubble bot kakao-card");
  if (card.thumbnail) box.append(el("div", "thumb", "🖼 이미지"));
  if (card.title) box.append(el("strong", "card-title", card.title));
  if (card.description) box.append(el("p", "card-text", card.description));
  if (card.header) box.append(el("strong", "card-title", card.header.title));
  for (const item of card.items || []) box.append(el("p", "card-item", [item.title, item.description].filter(Boolean).join(" · ")));
  if (card.buttons) box.append(kakaoButtons(card.buttons, send));
  return box;
}

// One Kakao 2.0 response drawn as KakaoTalk would: text bubbles, cards, quick replies as buttons.
function renderKakao(response, chat, quick, send) {
  const template = response.template || {};
  for (const output of template.outputs || []) {
    if (output.simpleText) chat.append(el("div", "bubble bot", output.simpleText.text));
    else if (output.simpleImage) chat.append(el("div", "bubble bot", "🖼 " + (output.simpleImage.altText || "이미지")));
    else if (output.carousel) {
      const row = el("div", "carousel");
      for (const item of output.carousel.items || []) row.append(kakaoCard(item, send));
      chat.append(row);
    } else {
      const card = output.basicCard || output.textCard || output.listCard || output.itemCard || output.commerceCard;
      if (card) chat.append(kakaoCard(card, send));
    }
  }
  quick.replaceChildren();
  for (const reply of template.quickReplies || []) {
    const b = el("button", "quick", reply.label);
    b.type = "button";
    b.addEventListener("click", () => send(reply.messageText || reply.label));
    quick.append(b);
  }
  chat.scrollTop = chat.scrollHeight;
}

function startSimulator(form) {
  const chat = document.getElementById("sim-chat");
  const quick = document.getElementById("sim-quick");
  const input = document.getElementById("sim-message");
  const bot = document.getElementById("sim-bot");
  const user = document.getElementById("sim-user");
  const callback = document.getElementById("sim-callback");
  const title = document.querySelector(".phone-title");
  bot.addEventListener("input", () => { title.textContent = bot.value; });
  document.getElementById("sim-new-user").addEventListener("click", () => {
    user.value = "console-" + Math.random().toString(16).slice(2, 8);
    chat.replaceChildren();
    quick.replaceChildren();
  });

  async function poll(sink, waiting) {
    const deadline = Date.now() + 70000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      const response = await fetch(form.dataset.poll + sink, { credentials: "same-origin" });
      if (!response.ok) continue;
      const { deliveries } = await response.json();
      if (deliveries.length) {
        waiting.remove();
        for (const delivery of deliveries) renderKakao(delivery.body, chat, quick, send);
        return;
      }
    }
    waiting.textContent = "콜백 답변이 오지 않았어요.";
  }

  async function send(text) {
    text = text.trim();
    if (!text) return;
    chat.append(el("div", "bubble user", text));
    quick.replaceChildren();
    chat.scrollTop = chat.scrollHeight;
    const response = await post(form.dataset.send, {
      bot_id: bot.value, user_id: user.value, utterance: text, callback: callback.checked,
    });
    const result = await response.json();
    if (!response.ok) {
      chat.append(el("div", "bubble error", "보내지 못했어요: " + JSON.stringify(result.detail)));
      return;
    }
    const reply = result.reply;
    if (result.status !== 200) {
      chat.append(el("div", "bubble error", `/skill이 ${result.status} 오류로 답했어요: ${reply.detail}`));
      return;
    }
    if (reply.useCallback) {
      chat.append(el("div", "bubble bot ack", (reply.data && reply.data.text) || "…"));
      const waiting = el("div", "typing", "답변 기다리는 중…");
      chat.append(waiting);
      chat.scrollTop = chat.scrollHeight;
      if (result.sink) await poll(result.sink, waiting);
    } else {
      renderKakao(reply, chat, quick, send);
    }
  }

  // Draws any Kakao response as the simulator would (its buttons send through the same path); used by the tests.
  window.kakaoSimulator = { render: (response) => renderKakao(response, chat, quick, send) };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    input.value = "";
    send(text);
  });
}

// --- chat: the chat service's Server-Sent Events, read from fetch as they arrive --------------------------

// Calls `onEvent` with each parsed `data:` payload of an SSE body ("[DONE]" as the string itself).
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;  // keep-alive comments
        const data = line.slice(6);
        onEvent(data === "[DONE]" ? data : JSON.parse(data));
      }
    }
  }
}

function startChat(form) {
  const log = document.getElementById("chat-log");
  const input = document.getElementById("chat-message");
  const bot = document.getElementById("chat-bot");
  const title = document.getElementById("chat-title");
  const sendButton = form.querySelector("button[type=submit]");
  // The conversation so far, sent with every message as the chat API expects.
  const history = [];
  const clear = () => { history.length = 0; log.replaceChildren(); };
  bot.addEventListener("change", () => { title.textContent = bot.value; clear(); });
  document.getElementById("chat-clear").addEventListener("click", clear);

  async function ask(text) {
    const messages = [...history, { role: "user", content: text }];
    log.append(el("div", "bubble user", text));
    const bubble = el("div", "bubble bot streaming", "");
    bubble.dataset.chunks = "0";
    log.append(bubble);
    log.scrollTop = log.scrollHeight;
    const fail = (message) => { bubble.className = "bubble error"; bubble.textContent = message; };
    const response = await post(form.dataset.send, { model: bot.value.trim(), messages, stream: true });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || response.status);
      fail("보내지 못했어요: " + detail);
      return;
    }
    let done = false;
    await readEvents(response, (data) => {
      if (data === "[DONE]") { done = true; return; }
      if (data.error) { fail("답변이 중간에 끊겼어요: " + data.error.message); return; }
      const delta = data.choices && data.choices[0] && data.choices[0].delta;
      if (delta && delta.content) {
        bubble.textContent += delta.content;
        bubble.dataset.chunks = String(Number(bubble.dataset.chunks) + 1);
        log.scrollTop = log.scrollHeight;
      }
    });
    if (!done) return;
    bubble.classList.remove("streaming");
    history.push({ role: "user", content: text }, { role: "assistant", content: bubble.textContent });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || sendButton.disabled) return;
    input.value = "";
    sendButton.disabled = true;
    try {
      await ask(text);
    } finally {
      sendButton.disabled = false;
      input.focus();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const panel = document.querySelector("[data-refresh]");
  if (panel) startRefresh(panel);
  const area = document.querySelector("textarea[data-check]");
  if (area) startPromptCheck(area);
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  }
  const simulator = document.getElementById("sim-form");
  if (simulator) startSimulator(simulator);
  const chat = document.getElementById("chat-form");
  if (chat) startChat(chat);
});
