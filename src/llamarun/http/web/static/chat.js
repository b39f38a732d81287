// The chat page: models from /api/tags, answers streamed from /v1/chat/completions, conversations
// kept on the server (/web/conversations) as a tree of messages (edits and regenerations branch).
"use strict";

(() => {
  const { el, request, json, lines, sseData, toast } = Llama;
  const $ = (id) => document.getElementById(id);
  const PRESETS = {
    precise: { temperature: 0.2, top_p: 0.9, top_k: 40, min_p: 0.05, repeat_penalty: 1.1 },
    balanced: { temperature: 0.7, top_p: 0.95, top_k: 40, min_p: 0.05, repeat_penalty: 1.1 },
    creative: { temperature: 1.1, top_p: 0.98, top_k: 100, min_p: 0.02, repeat_penalty: 1.05 },
    greedy: { temperature: 0, top_p: 1, top_k: 1, min_p: 0, repeat_penalty: 1 },
  };
  const FIELDS = ["temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed"];
  // Model output is untrusted: no tags that load, run, submit or restyle anything.
  const PURIFY = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "img", "picture", "source", "video", "audio", "iframe", "form", "input", "button",
      "textarea", "select", "option", "svg", "math", "link", "meta", "base", "object", "embed"],
    FORBID_ATTR: ["style", "srcset", "action", "formaction", "background", "poster"],
  };

  let conv = blank();
  let streaming = null; // {controller, message} while an answer streams
  let saveChain = Promise.resolve();

  function blank() {
    return { id: "", title: "New chat", model: "", system: "", settings: {}, messages: [], current: null };
  }

  function newId() {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- the message tree ------------------------------------------------------------------------

  function byId(id) { return conv.messages.find((m) => m.id === id); }

  function branch(leafId) {
    const path = [];
    for (let m = leafId && byId(leafId); m; m = m.parent && byId(m.parent)) path.unshift(m);
    return path;
  }

  function siblings(message) {
    return conv.messages.filter((m) => m.parent === message.parent && m.role === message.role);
  }

  function deepestLeaf(message) {
    // The last message of the newest branch below `message`.
    let leaf = message;
    for (;;) {
      const kids = conv.messages.filter((m) => m.parent === leaf.id);
      if (!kids.length) return leaf;
      leaf = kids[kids.length - 1];
    }
  }

  // -- rendering ------------------------------------------------------------------------------

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function setUpMarkdown() {
    // HTML a model writes is shown as text (not parsed); DOMPurify then cleans what Markdown made.
    marked.use({ renderer: { html(token) { return escapeHtml(token.text || token.raw || ""); } } });
  }

  function markdown(text) {
    const html = marked.parse(text, { gfm: true, breaks: false });
    const clean = DOMPurify.sanitize(html, PURIFY);
    const box = el("div", { class: "markdown" });
    box.innerHTML = clean;
    for (const link of box.querySelectorAll("a[href]")) {
      link.setAttribute("rel", "noopener noreferrer nofollow");
      link.setAttribute("target", "_blank");
    }
    for (const code of box.querySelectorAll("pre > code")) {
      hljs.highlightElement(code);
      const copy = el("button", { type: "button", class: "copy-code", text: "Copy" });
      copy.addEventListener("click", () => copyText(code.textContent, copy));
      code.parentElement.prepend(copy);
    }
    return box;
  }

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  function statsLine(s) {
    if (!s || s.completion_tokens === undefined) return s && s.finish ? "(" + s.finish + ")" : "";
    const parts = [];
    if (s.prompt_tps) parts.push("prompt " + s.prompt_tokens + " tok at " + s.prompt_tps.toFixed(1) + " tok/s");
    else parts.push("prompt " + s.prompt_tokens + " tok");
    parts.push("cached " + (s.cached_tokens || 0));
    if (s.gen_tps) parts.push(s.completion_tokens + " tok at " + s.gen_tps.toFixed(1) + " tok/s");
    else parts.push(s.completion_tokens + " tok");
    if (s.ttft_s !== undefined) parts.push("first token " + (s.ttft_s * 1000).toFixed(0) + " ms");
    if (s.finish && s.finish !== "stop") parts.push("(" + s.finish + ")");
    return parts.join(" · ");
  }

  function branchNav(message) {
    const all = siblings(message);
    if (all.length < 2) return null;
    const at = all.indexOf(message);
    const go = (step) => () => {
      const next = all[(at + step + all.length) % all.length];
      conv.current = deepestLeaf(next).id;
      render();
      save();
    };
    return el("span", { class: "branches" },
      el("button", { type: "button", "aria-label": "Previous version", onclick: go(-1), text: "‹" }),
      el("span", { class: "branch-count", text: (at + 1) + "/" + all.length }),
      el("button", { type: "button", "aria-label": "Next version", onclick: go(1), text: "›" }));
  }

  function bubble(message) {
    const body = el("div", { class: "body" });
    fillBody(body, message);
    const actions = el("div", { class: "actions" }, branchNav(message));
    const copy = el("button", { type: "button", text: "Copy" });
    copy.addEventListener("click", () => copyText(message.content, copy));
    actions.append(copy);
    if (message.role === "user") {
      actions.append(el("button", { type: "button", class: "edit", text: "Edit", onclick: () => edit(message) }));
    } else {
      actions.append(el("button", { type: "button", class: "regenerate", text: "Regenerate",
        onclick: () => generate(message.parent) }));
    }
    const stats = message.role === "assistant" ? el("div", { class: "stats", text: statsLine(message.stats) }) : null;
    return el("article", { class: "msg " + message.role, "data-id": message.id,
      "aria-label": message.role === "user" ? "You" : "Assistant" }, body, stats, actions);
  }

  function fillBody(body, message) {
    body.replaceChildren();
    if (message.thinking) {
      const fold = el("details", { class: "thinking" }, el("summary", { text: "Reasoning" }),
        el("div", { class: "thinking-text", text: message.thinking }));
      body.append(fold);
    }
    if (message.role === "user") body.append(el("div", { class: "plain", text: message.content }));
    else body.append(markdown(message.content));
  }

  function render() {
    const box = $("messages");
    const path = branch(conv.current);
    box.replaceChildren(...path.map(bubble));
    if (!path.length) box.append(el("div", { id: "empty", class: "empty", text: "Pick a model and say hello." }));
    box.scrollTop = box.scrollHeight;
    for (const item of document.querySelectorAll("#conversations li")) {
      item.classList.toggle("active", item.dataset.id === conv.id);
    }
  }

  // -- settings -----------------------------------------------------------------------------------

  function showSettings() {
    $("system").value = conv.system || "";
    for (const name of FIELDS) {
      const v = conv.settings[name];
      $(name).value = v === undefined || v === null ? "" : v;
    }
    $("preset").value = conv.settings.preset || "";
    $("json-mode").checked = !!conv.settings.json_mode;
    $("json-schema").hidden = !conv.settings.json_mode;
    if (conv.settings.json_schema) $("json-schema").value = conv.settings.json_schema;
  }

  function readSettings() {
    conv.system = $("system").value;
    const settings = { preset: $("preset").value, json_mode: $("json-mode").checked };
    if (settings.json_mode) settings.json_schema = $("json-schema").value;
    for (const name of FIELDS) {
      const raw = $(name).value.trim();
      if (raw !== "") settings[name] = Number(raw);
    }
    conv.settings = settings;
  }

  function applyPreset() {
    const preset = PRESETS[$("preset").value];
    if (!preset) return;
    for (const [name, value] of Object.entries(preset)) $(name).value = value;
    readSettings();
  }

  // -- talking to the model --------------------------------------------------------------------------

  function requestBody(past) {
    readSettings();
    const s = conv.settings;
    const messages = [];
    if (conv.system.trim()) messages.push({ role: "system", content: conv.system });
    for (const m of past) messages.push({ role: m.role, content: m.content });
    const body = { model: $("model").value, messages, stream: true, stream_options: { include_usage: true } };
    for (const name of FIELDS) if (s[name] !== undefined && !Number.isNaN(s[name])) body[name] = s[name];
    if (s.json_mode) {
      let schema;
      try { schema = JSON.parse(s.json_schema || "{}"); } catch (e) { throw new Error("the JSON schema is not valid JSON: " + e.message); }
      body.response_format = { type: "json_schema", json_schema: { name: "answer", schema } };
    }
    return body;
  }

  async function generate(parentId) {
    if (streaming) return;
    if (!$("model").value) { toast("Pick a model first (or pull one)."); return; }
    const past = branch(parentId);
    let body;
    try { body = requestBody(past); } catch (e) { toast(e.message); return; }
    const message = { id: newId(), parent: parentId, role: "assistant", content: "", thinking: "",
      model: body.model, stats: {}, created: Date.now() / 1000 };
    conv.messages.push(message);
    conv.current = message.id;
    conv.model = body.model;
    render();
    const node = document.querySelector('article[data-id="' + message.id + '"]');
    node.classList.add("streaming");
    const controller = new AbortController();
    streaming = { controller, message };
    setBusy(true);
    const started = performance.now();
    let first = null, usage = null, finish = null, painted = 0;
    try {
      const response = await request("/v1/chat/completions", { method: "POST", json: body, signal: controller.signal });
      for await (const event of lines(response, "\n\n")) {
        const data = sseData(event);
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          const delta = choice.delta || {};
          if (delta.content) message.content += delta.content;
          if (delta.reasoning_content) message.thinking += delta.reasoning_content;
          if ((delta.content || delta.reasoning_content) && first === null) first = performance.now();
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (performance.now() - painted > 30) { // at most ~30 repaints a second
          fillBody(node.querySelector(".body"), message);
          painted = performance.now();
          $("messages").scrollTop = $("messages").scrollHeight;
        }
      }
    } catch (e) {
      if (e.name === "AbortError") finish = "stopped";
      else { finish = "error"; toast("The answer failed: " + e.message); }
    } finally {
      streaming = null;
      setBusy(false);
    }
    message.stats = stats(usage, started, first, performance.now(), finish);
    render();
    await save();
  }

  function stats(usage, started, first, ended, finish) {
    const s = { finish: finish || "stop" };
    if (usage) {
      s.prompt_tokens = usage.prompt_tokens;
      s.completion_tokens = usage.completion_tokens;
      s.cached_tokens = (usage.prompt_tokens_details || {}).cached_tokens || 0;
    }
    if (first !== null) {
      s.ttft_s = (first - started) / 1000;
      if (usage && s.ttft_s > 0) s.prompt_tps = Math.max(0, s.prompt_tokens - s.cached_tokens) / s.ttft_s;
      const gen = (ended - first) / 1000;
      if (usage && gen > 0 && s.completion_tokens > 1) s.gen_tps = (s.completion_tokens - 1) / gen;
    }
    return s;
  }

  function setBusy(busy) {
    $("send").hidden = busy;
    $("stop").hidden = !busy;
    for (const b of document.querySelectorAll(".msg .edit, .msg .regenerate")) b.disabled = busy;
  }

  function stop() {
    if (streaming) streaming.controller.abort();
  }

  async function send(text) {
    if (!text.trim() || streaming) return;
    if (!$("model").value) { toast("Pick a model first (or pull one)."); return; }
    const message = { id: newId(), parent: conv.current, role: "user", content: text, created: Date.now() / 1000 };
    conv.messages.push(message);
    conv.current = message.id;
    if (conv.title === "New chat") conv.title = text.trim().split("\n")[0].slice(0, 60);
    render();
    await save();
    await generate(message.id);
  }

  function edit(message) {
    if (streaming) return;
    const node = document.querySelector('article[data-id="' + message.id + '"]');
    const area = el("textarea", { class: "edit-box", rows: 3, "aria-label": "Edit message" });
    area.value = message.content;
    const done = el("button", { type: "button", class: "primary", text: "Send" });
    const cancel = el("button", { type: "button", text: "Cancel", onclick: render });
    done.addEventListener("click", async () => {
      const text = area.value;
      if (!text.trim()) return;
      const copy = { id: newId(), parent: message.parent, role: "user", content: text, created: Date.now() / 1000 };
      conv.messages.push(copy);
      conv.current = copy.id;
      render();
      await save();
      await generate(copy.id);
    });
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); done.click(); }
      if (e.key === "Escape") render();
    });
    node.querySelector(".body").replaceChildren(area, el("div", { class: "row" }, done, cancel));
    area.focus();
  }

  // -- conversations on the server ---------------------------------------------------------------------

  function save() {
    // Saves one after another, so that a later state never loses to an earlier one.
    readSettings();
    saveChain = saveChain.then(async () => {
      const doc = JSON.parse(JSON.stringify(conv));
      try {
        const stored = conv.id
          ? await json("/web/conversations/" + encodeURIComponent(conv.id), { method: "PUT", json: doc })
          : await json("/web/conversations", { method: "POST", json: doc });
        const fresh = !conv.id;
        conv.id = stored.id;
        conv.created = stored.created;
        conv.updated = stored.updated;
        if (fresh) history.replaceState(null, "", "#" + stored.id);
        await listConversations();
      } catch (e) {
        toast("Could not save the conversation: " + e.message);
      }
    });
    return saveChain;
  }

  async function listConversations() {
    const q = $("search").value.trim();
    const found = await json("/web/conversations?q=" + encodeURIComponent(q));
    const list = $("conversations");
    list.replaceChildren(...found.conversations.map((c) => conversationItem(c)));
  }

  function conversationItem(c) {
    const open = el("button", { type: "button", class: "open", text: c.title || "Untitled", title: c.title,
      onclick: () => openConversation(c.id) });
    const rename = el("button", { type: "button", class: "rename", "aria-label": "Rename " + c.title, text: "✎" });
    const remove = el("button", { type: "button", class: "delete", "aria-label": "Delete " + c.title, text: "✕" });
    const item = el("li", { "data-id": c.id, class: c.id === conv.id ? "active" : "" }, open, rename, remove);
    rename.addEventListener("click", () => {
      const input = el("input", { type: "text", class: "rename-box", "aria-label": "New title", maxlength: 200 });
      input.value = c.title;
      let finished = false;
      const finish = async (keep) => {
        if (finished) return; // Enter, then the blur of the removed box: once
        finished = true;
        if (keep && input.value.trim() && input.value.trim() !== c.title) {
          await json("/web/conversations/" + encodeURIComponent(c.id),
            { method: "PATCH", json: { title: input.value.trim() } });
          if (c.id === conv.id) conv.title = input.value.trim();
        }
        await listConversations();
      };
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") finish(true);
        if (e.key === "Escape") finish(false);
      });
      input.addEventListener("blur", () => finish(true), { once: true });
      item.replaceChildren(input);
      input.focus();
    });
    remove.addEventListener("click", () => {
      const sure = el("button", { type: "button", class: "danger confirm-delete", text: "Delete?" });
      sure.addEventListener("click", async () => {
        await json("/web/conversations/" + encodeURIComponent(c.id), { method: "DELETE" });
        if (c.id === conv.id) newChat();
        await listConversations();
      });
      remove.replaceWith(sure);
      sure.focus();
    });
    return item;
  }

  async function openConversation(id) {
    if (streaming) stop();
    try {
      conv = await json("/web/conversations/" + encodeURIComponent(id));
    } catch (e) {
      toast("Could not open the conversation: " + e.message);
      return;
    }
    history.replaceState(null, "", "#" + id);
    if (conv.model && [...$("model").options].some((o) => o.value === conv.model)) $("model").value = conv.model;
    showSettings();
    render();
    closeSidebarOnPhone();
  }

  function newChat() {
    if (streaming) stop();
    const keep = { settings: conv.settings, system: conv.system };
    conv = blank();
    Object.assign(conv, keep);
    history.replaceState(null, "", location.pathname);
    showSettings();
    render();
    $("prompt").focus();
  }

  async function exportAll() {
    const data = await json("/web/conversations/export");
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: "llamarun-conversations.json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function importFile(file) {
    try {
      const data = JSON.parse(await file.text());
      const list = Array.isArray(data) ? data : data.conversations;
      const done = await json("/web/conversations/import", { method: "POST", json: { conversations: list } });
      toast("Imported " + done.imported.length + " conversation(s).");
      await listConversations();
    } catch (e) {
      toast("Import failed: " + e.message);
    }
  }

  // -- models ---------------------------------------------------------------------------------------------

  async function loadModels(select) {
    const tags = await json("/api/tags");
    const box = $("model");
    const names = tags.models.map((m) => m.name).sort();
    box.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    if (!names.length) box.append(el("option", { value: "", text: "no models: pull one" }));
    const wanted = select || conv.model || localStorage.getItem("llamarun.model");
    if (wanted && names.includes(wanted)) box.value = wanted;
  }

  async function loadCatalog() {
    try {
      const data = await json("/web/catalog");
      $("catalog").replaceChildren(...data.models.map((m) => el("option", { value: m.name, text: m.description })));
    } catch (_) { /* the list is a convenience */ }
  }

  async function pull() {
    const name = $("pull-name").value.trim();
    if (!name) return;
    const bar = $("pull-progress"), status = $("pull-status");
    bar.hidden = false;
    bar.removeAttribute("value");
    status.textContent = "starting";
    $("pull-start").disabled = true;
    try {
      const response = await request("/api/pull", { method: "POST", json: { model: name, stream: true } });
      for await (const line of lines(response)) {
        const event = JSON.parse(line);
        if (event.error) throw new Error(event.error);
        if (event.total) {
          bar.max = event.total;
          bar.value = event.completed || 0;
          status.textContent = event.status + " " + Math.floor(100 * (event.completed || 0) / event.total) + "%";
        } else {
          status.textContent = event.status || "";
        }
      }
      status.textContent = "pulled " + name;
      bar.max = 1; bar.value = 1;
      await loadModels(name.includes(":") ? name : name + ":latest");
      if (!$("model").value.startsWith(name)) await loadModels();
    } catch (e) {
      status.textContent = "failed: " + e.message;
    } finally {
      $("pull-start").disabled = false;
    }
  }

  // -- wiring ----------------------------------------------------------------------------------------------

  function togglePanel(button, panel) {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) panel.querySelector("input, textarea, select").focus();
  }

  function closeSidebarOnPhone() {
    if (window.matchMedia("(max-width: 760px)").matches) {
      document.body.classList.remove("sidebar-open");
      $("toggle-sidebar").setAttribute("aria-expanded", "false");
    }
  }

  function wire() {
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("prompt").value;
      $("prompt").value = "";
      send(text);
    });
    $("prompt").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
    });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && streaming) stop(); });
    $("stop").addEventListener("click", stop);
    $("new-chat").addEventListener("click", newChat);
    $("theme").addEventListener("click", Llama.toggleTheme);
    $("pull-open").addEventListener("click", () => togglePanel($("pull-open"), $("pull-panel")));
    $("settings-open").addEventListener("click", () => togglePanel($("settings-open"), $("settings")));
    $("pull-start").addEventListener("click", pull);
    $("pull-name").addEventListener("keydown", (e) => { if (e.key === "Enter") pull(); });
    $("preset").addEventListener("change", applyPreset);
    for (const name of FIELDS) $(name).addEventListener("change", () => { $("preset").value = ""; readSettings(); });
    $("json-mode").addEventListener("change", () => { $("json-schema").hidden = !$("json-mode").checked; readSettings(); });
    $("model").addEventListener("change", () => localStorage.setItem("llamarun.model", $("model").value));
    let searchTimer = null;
    $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(listConversations, 200); });
    $("export").addEventListener("click", exportAll);
    $("import").addEventListener("click", () => $("import-file").click());
    $("import-file").addEventListener("change", () => { const f = $("import-file").files[0]; if (f) importFile(f); });
    $("toggle-sidebar").addEventListener("click", () => {
      const open = document.body.classList.toggle("sidebar-open");
      $("toggle-sidebar").setAttribute("aria-expanded", String(open));
    });
  }

  async function start() {
    setUpMarkdown();
    wire();
    showSettings();
    try {
      await loadModels();
      await listConversations();
      const id = location.hash.slice(1);
      if (id) await openConversation(id);
      document.body.dataset.ready = "true";
    } catch (e) {
      toast("The server did not answer: " + e.message);
    }
    loadCatalog();
    $("prompt").focus();
  }

  start();
})();
