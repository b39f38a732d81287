// Shared by the chat page and the dashboard: API calls with the key, streams, theme, small helpers.
"use strict";

const Llama = (() => {
  const KEY = "llamarun.apiKey";
  const THEME = "llamarun.theme";
  let keyWaiter = null;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function askKey() {
    // The key dialog, once for every call waiting on it.
    if (keyWaiter) return keyWaiter;
    const dialog = document.getElementById("key-dialog");
    if (!dialog) return Promise.reject(new Error("this server needs an API key"));
    keyWaiter = new Promise((resolve) => {
      const form = document.getElementById("key-form");
      const input = document.getElementById("api-key");
      form.addEventListener("submit", () => {
        localStorage.setItem(KEY, input.value.trim());
        keyWaiter = null;
        resolve();
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
    return keyWaiter;
  }

  async function request(path, options = {}, retried = false) {
    const headers = new Headers(options.headers || {});
    const key = localStorage.getItem(KEY);
    if (key) headers.set("Authorization", "Bearer " + key);
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      options = { ...options, body: JSON.stringify(options.json) };
    }
    const response = await fetch(path, { ...options, headers, credentials: "omit" });
    if (response.status === 401 && !retried) {
      await askKey();
      return request(path, options, true);
    }
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const body = await response.json();
        message = (body.error && (body.error.message || body.error)) || body.detail || message;
      } catch (_) { /* not JSON */ }
      const error = new Error(typeof message === "string" ? message : JSON.stringify(message));
      error.status = response.status;
      throw error;
    }
    return response;
  }

  async function json(path, options) {
    const response = await request(path, options);
    return response.status === 204 ? null : response.json();
  }

  async function* lines(response, separator = "\n") {
    // The body of a streamed response, split at `separator` (NDJSON lines or SSE events).
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let held = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      held += decoder.decode(value, { stream: true });
      let at;
      while ((at = held.indexOf(separator)) >= 0) {
        const line = held.slice(0, at);
        held = held.slice(at + separator.length);
        if (line.trim()) yield line;
      }
    }
    held += decoder.decode();
    if (held.trim()) yield held;
  }

  function sseData(event) {
    // The data of one server-sent event (its `data:` lines joined).
    return event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
  }

  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
  }

  function toggleTheme() {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    localStorage.setItem(THEME, next);
    applyTheme(next);
  }

  function toast(message) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.classList.add("shown");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => box.classList.remove("shown"), 4000);
  }

  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
    return (n / 1024 ** i).toFixed(i ? 1 : 0) + " " + units[i];
  }

  applyTheme(localStorage.getItem(THEME));
  return { el, request, json, lines, sseData, toggleTheme, toast, bytes };
})();
