/* The dashboard's transfers in flight: uploads being received and downloads being sent.
 *
 * Each server process's sample (fileshare/dashboard/rates.py, about once a second while
 * anything moves) carries its transfers in flight and those that ended since its last
 * sample (fileshare/dashboard/transfers.py). A process's list is replaced by its latest
 * sample; a process not heard from for STALE seconds no longer counts. Ended transfers
 * go to a short list of recent ones, newest first.
 *
 * dashboard.js hands the samples over: window.ConciergeTransfers.sample(message).
 * Every value from the server reaches the DOM through textContent or attributes.
 */
(function () {
  "use strict";

  const STALE = 15;
  const RECENT = 10;
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
  const number = new Intl.NumberFormat();

  function bytes(n) {
    let i = 0;
    let v = n;
    while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + UNITS[i];
  }

  function since(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const processes = new Map(); // id -> {heard, name, active, clock}
  const recent = [];

  function sample(message) {
    const moving = message.transfers || { active: [], ended: [] };
    // The process's clock against ours, so "started 12 s ago" holds across machines.
    const skew = Date.now() / 1000 - message.time;
    processes.set(message.process, { heard: Date.now(), name: message.name, active: moving.active, skew });
    for (const t of moving.ended) {
      if (recent.some((r) => r.id === t.id)) continue;
      recent.unshift(Object.assign({ server: message.name, skew }, t));
    }
    recent.splice(RECENT);
    render();
  }

  function direction(t) {
    const up = t.kind === "upload";
    return el("td", { class: "direction" },
      el("span", { class: up ? "dir up" : "dir down", text: up ? "↑ upload" : "↓ download" }),
      el("div", { class: "sub" }, el("code", { text: t.method })));
  }

  function where(t) {
    return [
      el("td", { class: "client" }, el("span", { class: "name", text: t.client })),
      el("td", { class: "path", title: t.path }, t.path ? t.path : el("span", { class: "muted", text: "form upload" })),
    ];
  }

  function progress(t, storing) {
    const share = t.total ? Math.min(1, t.done / t.total) : null;
    const bar = el("progress", share === null
      ? { "aria-label": "progress unknown" }
      : { max: t.total, value: t.done, "aria-label": `${Math.round(100 * share)}%` });
    const text = t.total
      ? `${bytes(t.done)} of ${bytes(t.total)} · ${Math.floor(100 * share)}%`
      : `${bytes(t.done)} (size unknown)`;
    return el("td", { class: "progress" }, bar,
      el("div", { class: "sub", title: `${number.format(t.done)} bytes` }, text, storing ? " · storing…" : null));
  }

  function activeRow(t, skew) {
    const now = Date.now() / 1000 - skew;
    const storing = t.kind === "upload" && t.total !== null && t.done >= t.total;
    return el("tr", { "data-id": t.id, "data-client": t.client, "data-path": t.path, "data-done": t.done, "data-total": t.total === null ? "" : t.total },
      direction(t), ...where(t), progress(t, storing),
      el("td", { class: "num", text: bytes(t.rate) + "/s" }),
      el("td", { class: "num muted", text: since(now - t.started) }));
  }

  function recentRow(t) {
    const ok = t.outcome === "finished";
    return el("tr", { "data-id": t.id, "data-client": t.client, "data-path": t.path, "data-outcome": t.outcome },
      el("td", {}, el("span", { class: ok ? "outcome ok" : "outcome bad", text: ok ? "finished" : "failed" })),
      direction(t), ...where(t),
      el("td", { class: "num", title: `${number.format(t.done)} bytes` }, bytes(t.done), t.total && t.total !== t.done ? ` of ${bytes(t.total)}` : null),
      el("td", { class: "num", text: bytes(t.average) + "/s" }),
      el("td", { class: "muted", text: t.detail }),
      el("td", { class: "num muted", text: since(t.ended - t.started) }));
  }

  function render() {
    const now = Date.now();
    const active = [];
    for (const [id, p] of processes) {
      if (now - p.heard > STALE * 1000) { processes.delete(id); continue; }
      for (const t of p.active) active.push([t, p.skew]);
    }
    active.sort((a, b) => a[0].started - b[0].started);
    const table = document.getElementById("transfers-table");
    if (!table) return;
    table.tBodies[0].replaceChildren(...active.map(([t, skew]) => activeRow(t, skew)));
    table.hidden = !active.length;
    document.getElementById("transfers-count").textContent = number.format(active.length);
    document.getElementById("transfers-empty").hidden = active.length > 0;
    const past = document.getElementById("transfers-recent");
    past.tBodies[0].replaceChildren(...recent.map(recentRow));
    document.getElementById("transfers-recent-box").hidden = !recent.length;
  }

  window.ConciergeTransfers = { sample };
  setInterval(render, 1000);
})();
