// Shared by the pages: the API key (entered once, kept in sessionStorage) and JSON calls to the API.
"use strict";

const KEY_STORAGE = "nudge.apiKey";

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const key = apiKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  return headers;
}

// The API's error body is {"error": {"code", "message", "field"?}}; anything else gets a plain message.
function errorMessage(status, body) {
  if (body && body.error && body.error.message) {
    const field = body.error.field ? " (" + body.error.field + ")" : "";
    return body.error.message + field;
  }
  if (status === 0) return "the server did not answer";
  return "HTTP " + status;
}

async function apiJson(method, path, payload) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: authHeaders(payload === undefined ? {} : { "Content-Type": "application/json" }),
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  } catch (err) {
    return { ok: false, status: 0, body: null, message: "the server did not answer" };
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  return { ok: response.ok, status: response.status, body, message: response.ok ? "" : errorMessage(response.status, body) };
}

// The key box in the top bar: type a key, press Enter or "Use key"; "Forget" clears it.
function setupKeyBox(onChange) {
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const forget = document.getElementById("forget-key");
  function render() {
    const has = !!apiKey();
    state.textContent = has ? "API key set for this tab" : "No API key";
    input.style.display = has ? "none" : "";
    forget.style.display = has ? "" : "none";
    document.getElementById("use-key").style.display = has ? "none" : "";
  }
  function use() {
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY_STORAGE, value);
    input.value = "";
    render();
    onChange();
  }
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") use(); });
  document.getElementById("use-key").addEventListener("click", use);
  forget.addEventListener("click", () => { sessionStorage.removeItem(KEY_STORAGE); render(); onChange(); });
  render();
}

function showBanner(id, kind, text) {
  const el = document.getElementById(id);
  el.className = "banner " + kind + (text ? " show" : "");
  el.textContent = text || "";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}
