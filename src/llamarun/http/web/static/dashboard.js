// The live dashboard: server-sent events from /web/dashboard/events, read with fetch (so that the
// API key goes in a header), drawn as cards, slot boxes, small SVG charts and tables.
"use strict";

(() => {
  const { el, request, lines, sseData, bytes } = Llama;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const W = 300, H = 120, PAD = 4;

  const fmt = (n, digits = 1) => (n === null || n === undefined ? "–" : Number(n).toFixed(digits));
  const ms = (s) => (s === null || s === undefined ? "–" : (s * 1000).toFixed(s < 0.1 ? 1 : 0) + " ms");
  const pct = (x) => (100 * (x || 0)).toFixed(1) + "%";

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  let serverNow = Date.now() / 1000; // the time of the last view, by the server's clock

  function chart(id, series, span, kind) {
    // series: [{points: [[t, v]...], cls}]; the x axis covers the last `span` seconds.
    const box = $(id);
    const now = serverNow;
    let max = 0, seen = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null) { seen += 1; if (v > max) max = v; }
    max = max > 0 ? max * 1.1 : 1;
    const x = (t) => PAD + (W - 2 * PAD) * (1 - (now - t) / span);
    const y = (v) => H - PAD - (H - 2 * PAD) * (v / max);
    const nodes = [svg("line", { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: "axis" })];
    for (const s of series) {
      const pts = s.points.filter(([t, v]) => v !== null && now - t <= span);
      if (kind === "dots") {
        for (const [t, v] of pts) nodes.push(svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: s.cls }));
      } else if (pts.length) {
        const d = pts.map(([t, v], i) => (i ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1)).join(" ");
        nodes.push(svg("path", { d, class: s.cls, "vector-effect": "non-scaling-stroke" }));
      }
    }
    box.replaceChildren(...nodes);
    return seen ? max / 1.1 : null;
  }

  function slotBox(s) {
    const lines = [el("div", { class: "phase", text: s.phase })];
    lines.push(el("div", { text: "slot " + s.slot + (s.request_id ? " · req " + s.request_id : "") }));
    if (s.phase === "idle") {
      lines.push(el("div", { text: s.cached_cells + " cells cached" }));
    } else {
      lines.push(el("div", { text: "prompt " + s.prompt_done + "/" + s.prompt_tokens }));
      lines.push(el("div", { text: "generated " + s.generated }));
      lines.push(el("div", { text: "age " + fmt(s.age_s, 1) + " s" }));
    }
    return el("div", { class: "slot " + s.phase, "data-slot": s.slot, "data-phase": s.phase }, ...lines);
  }

  function quant(q) {
    return q ? "p50 " + ms(q["0.5"]) + " · p90 " + ms(q["0.9"]) : "–";
  }

  function modelBox(m) {
    const head = el("div", { class: "model-head" },
      el("strong", { text: m.name }),
      el("span", { text: m.state }),
      el("span", { text: "≈ " + bytes(m.size_bytes) }),
      el("span", { text: "ctx " + m.n_ctx }),
      el("span", { text: m.busy_slots + "/" + m.n_slots + " slots busy" }),
      el("span", { text: m.queue_depth + " waiting" }),
      el("span", { text: m.in_use + " leases" }));
    if (m.state !== "ready") return el("div", { class: "box model", "data-model": m.name }, head);
    const kv = el("div", { class: "meter", title: "KV cache" }, el("span", { class: "kv-fill" }));
    kv.firstChild.setAttribute("data-w", Math.round(100 * m.kv_usage));
    const stats = el("div", { class: "stats-row" },
      el("span", {}, "KV ", el("b", { text: m.kv_cells_used + "/" + m.kv_cells_total + " (" + pct(m.kv_usage) + ")" })),
      el("span", {}, "prefix cache hits ", el("b", { class: "prefix-hit", text: pct(m.prefix_hit_rate) })),
      el("span", {}, "TTFT ", el("b", { text: quant(m.ttft_s) })),
      el("span", {}, "ITL ", el("b", { text: quant(m.itl_s) })),
      el("span", {}, "in ", el("b", { text: fmt(m.tokens_per_s_in) + " tok/s" })),
      el("span", {}, "out ", el("b", { text: fmt(m.tokens_per_s_out) + " tok/s" })),
      el("span", {}, "tokens ", el("b", { text: m.prompt_tokens + " in · " + m.generated_tokens + " out" })),
      el("span", {}, "preemptions ", el("b", { text: String(m.preemptions) })));
    return el("div", { class: "box model", "data-model": m.name }, head,
      el("div", { class: "slots" }, ...m.slots.map(slotBox)), kv, stats);
  }

  function sizeMeters() {
    // CSP allows no inline styles; widths go through the CSSOM instead.
    for (const bar of document.querySelectorAll(".kv-fill")) bar.style.width = bar.dataset.w + "%";
  }

  function recentRow(r) {
    const when = new Date(r.finished_at * 1000).toLocaleTimeString();
    return el("tr", {},
      el("td", { text: when }), el("td", { text: r.model }),
      el("td", { class: "outcome-" + r.outcome, text: r.outcome }),
      el("td", { class: "num", text: String(r.prompt_tokens) }), el("td", { class: "num", text: String(r.cached_tokens) }),
      el("td", { class: "num", text: String(r.generated_tokens) }), el("td", { class: "num", text: ms(r.ttft_s) }),
      el("td", { class: "num", text: ms(r.itl_s) }), el("td", { class: "num", text: fmt(r.total_s, 2) + " s" }),
      // the prompt's start (only with serve --log-prompts) is untrusted text: textContent, never HTML
      "prompt" in r ? el("td", { class: "prompt-text", title: r.prompt, text: r.prompt }) : null);
  }

  function show(view) {
    const t = view.totals;
    $("t-models").textContent = t.models_loaded;
    $("t-busy").textContent = t.busy_slots + "/" + t.slots;
    $("t-queue").textContent = t.queue_depth;
    $("t-in").textContent = fmt(t.tokens_per_s_in);
    $("t-out").textContent = fmt(t.tokens_per_s_out);
    $("t-inflight").textContent = view.http.in_flight;
    $("t-rss").textContent = bytes(view.process_rss_bytes);
    serverNow = view.time;
    const oldest = Math.min(...view.history.map((p) => p.t), ...view.latency_points.map((p) => p.t));
    const span = Math.min(300, Math.max(30, view.time - oldest));  // the last 5 minutes, once there are 5
    const rateMax = chart("c-rate", [
      { points: view.history.map((p) => [p.t, p.in]), cls: "line-in" },
      { points: view.history.map((p) => [p.t, p.out]), cls: "line-out" }], span, "lines");
    $("c-rate-max").textContent = "max " + fmt(rateMax) + " tok/s";
    const queueMax = chart("c-queue", [{ points: view.history.map((p) => [p.t, p.queue]), cls: "line-queue" }], span, "lines");
    $("c-queue-max").textContent = "max " + fmt(queueMax, 0);
    const ttftMax = chart("c-ttft", [{ points: view.latency_points.map((p) => [p.t, p.ttft_s]), cls: "dot-ttft" }], span, "dots");
    $("c-ttft-max").textContent = (ttftMax === null ? "no requests yet" : "max " + ms(ttftMax));
    const itlMax = chart("c-itl", [{ points: view.latency_points.map((p) => [p.t, p.itl_s]), cls: "dot-itl" }], span, "dots");
    $("c-itl-max").textContent = (itlMax === null ? "no requests yet" : "max " + ms(itlMax));
    const models = view.models.length ? view.models.map(modelBox)
      : [el("div", { class: "box", text: "No model is loaded: one loads with its first request." })];
    $("models").replaceChildren(...models);
    sizeMeters();
    const outcomes = { ...t.outcomes };
    const shown = ["stop", "length", "cancelled", "deadline", "error"].map((k) =>
      el("span", { class: "outcome-" + k, "data-outcome": k }, k + " ", el("b", { text: String(outcomes[k] || 0) })));
    shown.push(el("span", { "data-outcome": "503" }, "busy (HTTP 503) ", el("b", { text: String(view.http.overloaded_503) })));
    shown.push(el("span", {}, "HTTP 4xx ", el("b", { text: String(view.http.by_class["4xx"]) })));
    shown.push(el("span", {}, "HTTP 5xx ", el("b", { text: String(view.http.by_class["5xx"]) })));
    $("outcomes").replaceChildren(...shown);
    $("recent").tBodies[0].replaceChildren(...view.recent.map(recentRow));
    $("prompt-text-head").hidden = !view.recent.some((r) => "prompt" in r);
    document.body.dataset.views = String(Number(document.body.dataset.views || 0) + 1);
  }

  async function follow() {
    const live = $("live");
    for (;;) {
      try {
        const response = await request("/web/dashboard/events?interval=1");
        live.className = "live on";
        live.textContent = "live";
        for await (const event of lines(response, "\n\n")) {
          const data = sseData(event);
          if (data) show(JSON.parse(data));
        }
      } catch (e) {
        live.textContent = "reconnecting (" + e.message + ")";
      }
      live.className = "live off";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  $("theme").addEventListener("click", Llama.toggleTheme);
  follow();
})();
