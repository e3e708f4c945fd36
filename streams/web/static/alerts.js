// The live alerts feed: reads GET /v1/alerts/stream (server-sent events) with fetch, so the API key can be
// sent in a header, and resumes where it left off after a drop (Last-Event-ID).
"use strict";

const MAX_CARDS = 200;
let lastEventId = "";
let controller = null;
let generation = 0;
let received = 0;

function setStatus(kind, text) {
  const pill = document.getElementById("status");
  pill.className = "pill " + kind;
  pill.textContent = text;
}

function timeAgo(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return Math.floor(seconds) + " s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
  return new Date(iso).toLocaleString();
}

function card(alert) {
  const score = Math.max(0, Math.min(1, Number(alert.score) || 0));
  const bar = el("span", { class: "score-bar" }, el("span"));
  bar.firstChild.style.width = (score * 100).toFixed(0) + "%";
  const time = el("div", { class: "alert-time", title: alert.created_at, "data-created": alert.created_at, text: timeAgo(alert.created_at) });
  const node = el("article", { class: "panel alert-card fresh", "data-alert-id": alert.alert_id },
    el("div", { class: "alert-title", text: alert.title }),
    time,
    el("div", { class: "alert-message", text: alert.message }),
    el("div", { class: "alert-score-col" }, el("span", { class: "score", title: "score " + score.toFixed(3) }, bar, score.toFixed(2))),
    el("div", { class: "alert-meta" },
      el("span", { class: "chip", text: "customer " + alert.customer_id }),
      el("span", { class: "chip", text: alert.rule_id + " v" + alert.rule_version }),
      alert.item_key ? el("span", { class: "chip", text: alert.item_key }) : null,
      el("span", { class: "chip mono", title: "alert id (the webhook's X-Nudge-Alert-Id)", text: alert.alert_id })));
  setTimeout(() => node.classList.remove("fresh"), 4000);
  return node;
}

function addAlert(alert) {
  const feed = document.getElementById("feed");
  document.getElementById("empty").style.display = "none";
  if (feed.querySelector('[data-alert-id="' + CSS.escape(alert.alert_id) + '"]')) return; // a redelivery
  feed.insertBefore(card(alert), feed.children[1] || null);
  while (feed.children.length > MAX_CARDS + 1) feed.lastChild.remove();
  received += 1;
  document.getElementById("count").textContent = received + (received === 1 ? " alert" : " alerts");
}

// Parse a server-sent-events byte stream: blocks separated by a blank line, "field: value" lines.
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = { id: null, event: "message", data: [] };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
        else if (field === "event") event.event = val;
      }
      if (event.id !== null) lastEventId = event.id;
      if (event.data.length) onEvent(event.event, event.data.join("\n"));
    }
  }
}

async function connect() {
  const mine = ++generation;
  if (controller) controller.abort();
  controller = new AbortController();
  if (!apiKey()) {
    setStatus("error", "Enter an API key");
    return;
  }
  setStatus("", "Connecting…");
  const customer = document.getElementById("customer-filter").value.trim();
  const url = "/v1/alerts/stream" + (customer ? "?customer_id=" + encodeURIComponent(customer) : "");
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  let retryIn = 3000;
  try {
    const response = await fetch(url, { headers, signal: controller.signal, cache: "no-store" });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      const message = errorMessage(response.status, body);
      showBanner("banner", "error", "The alert stream refused: " + message);
      setStatus("error", response.status === 401 || response.status === 403 ? "Not allowed" : "Error " + response.status);
      if (response.status === 401 || response.status === 403 || response.status === 400) return;
      retryIn = 5000;
    } else {
      showBanner("banner", "error", "");
      await readEvents(response.body, (name, data) => {
        if (name === "ready") setStatus("live", "Live");
        else if (name === "alert") addAlert(JSON.parse(data));
      });
    }
  } catch (err) {
    if (err.name === "AbortError") return;
  }
  if (mine !== generation) return;
  setStatus("", "Reconnecting…");
  setTimeout(() => { if (mine === generation) connect(); }, retryIn);
}

document.addEventListener("DOMContentLoaded", () => {
  setupKeyBox(() => { lastEventId = ""; connect(); });
  let filterTimer = null;
  document.getElementById("customer-filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { lastEventId = ""; connect(); }, 500);
  });
  document.getElementById("clear").addEventListener("click", () => {
    for (const node of [...document.querySelectorAll(".alert-card")]) node.remove();
    received = 0;
    document.getElementById("count").textContent = "0 alerts";
    document.getElementById("empty").style.display = "";
  });
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-created]")) node.textContent = timeAgo(node.dataset.created);
  }, 10000);
  connect();
});
