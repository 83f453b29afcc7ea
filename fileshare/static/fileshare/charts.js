/* The dashboard's live charts: plain SVG, no dependencies, nothing from the internet.
 *
 * Every server process sends its running totals over the dashboard socket about once a
 * second ({"type": "metrics", process, name, time, totals}: fileshare/dashboard/rates.py).
 * For each process this script keeps the last sample and the rates since the one before
 * (difference of totals over the difference of the process's own clock), and once a second
 * adds the rates of the processes heard from lately into one point per chart. The charts
 * cover the last WINDOW seconds since the page opened; each shows its title, its unit and
 * its current value, and names its lines in that header (no legend to look for).
 *
 * dashboard.js hands the samples over: window.ConciergeCharts.sample(message).
 */
(function () {
  "use strict";

  const WINDOW = 300; // seconds shown
  const STALE = 15; // seconds without a sample before a process no longer counts
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 600;
  const HEIGHT = 120;

  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  function bytesPerSecond(n) {
    let i = 0;
    let v = n;
    while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    return (i === 0 ? Math.round(v) : v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + UNITS[i] + "/s";
  }

  const perSecond = (unit) => (n) => number.format(n) + " " + unit;
  const count = (one, many) => (n) => number.format(Math.round(n)) + " " + (Math.round(n) === 1 ? one : many);

  // Each chart: its lines, each a sum of totals (rates) or of gauges (levels).
  const CHARTS = [
    {
      id: "messages", title: "Messages per second", unit: "msg/s", format: perSecond("msg/s"),
      lines: [
        { key: "relayed", label: "relayed", rate: ["messages"] },
        { key: "refused", label: "refused", rate: ["refused"] },
      ],
    },
    {
      id: "bytes", title: "Bytes per second (websocket frames and HTTP bodies)", unit: "B/s", format: bytesPerSecond, ceiling: niceBytes,
      lines: [
        { key: "up", label: "↑ up, to the server", rate: ["ws_bytes_in", "http_bytes_in"] },
        { key: "down", label: "↓ down, to clients", rate: ["ws_bytes_out", "http_bytes_out"] },
      ],
    },
    {
      id: "clients", title: "Connected clients", unit: "clients", format: count("client", "clients"),
      lines: [{ key: "clients", label: "connected", level: ["clients"] }],
    },
  ];

  const processes = new Map(); // id -> {name, time, totals, rates, heard}
  const history = new Map(CHARTS.map((c) => [c.id, c.lines.map(() => [])]));

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- samples -------------------------------------------------------------------------

  function sample(message) {
    const totals = message.totals || {};
    const before = processes.get(message.process);
    const rates = {};
    if (before && message.time > before.time) {
      const seconds = message.time - before.time;
      for (const [key, value] of Object.entries(totals)) {
        // A counter never goes down; if it did, the process restarted: no rate for this step.
        rates[key] = Math.max(0, (value - (before.totals[key] || 0)) / seconds);
      }
    }
    processes.set(message.process, { name: message.name, time: message.time, totals, rates, heard: Date.now() });
  }

  function live() {
    const now = Date.now();
    return [...processes.values()].filter((p) => now - p.heard <= STALE * 1000);
  }

  function point(line, procs) {
    let sum = 0;
    for (const p of procs) {
      for (const key of line.rate || []) sum += p.rates[key] || 0;
      for (const key of line.level || []) sum += p.totals[key] || 0;
    }
    return sum;
  }

  // -- drawing -------------------------------------------------------------------------

  function niceCeiling(v) {
    if (v <= 1) return 1;
    const step = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step;
    return 10 * step;
  }

  // For bytes: a round number of B, KiB, MiB... (the top label reads "20 KiB/s", not "19.5").
  function niceBytes(v) {
    let scale = 1;
    while (v / scale >= 1024) scale *= 1024;
    return niceCeiling(v / scale) * scale;
  }

  function build(chart) {
    const figure = el("figure", "chart");
    figure.id = "chart-" + chart.id;
    figure.dataset.current = "0";
    const head = el("figcaption", "chart-head");
    head.append(el("span", "chart-title", chart.title));
    const values = el("span", "chart-values");
    chart.lines.forEach((line, i) => {
      const item = el("span", "chart-value line-" + i);
      item.dataset.line = line.key;
      item.append(el("span", "chart-swatch"), el("span", "chart-label", line.label + " "), el("strong", "chart-number", "–"));
      values.append(item);
    });
    head.append(values);
    const plot = el("div", "chart-plot");
    const drawing = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", role: "img",
      "aria-label": `${chart.title}, last ${WINDOW / 60} minutes` });
    for (const y of [0, 0.5, 1]) drawing.append(svg("line", { class: "grid", x1: 0, x2: WIDTH, y1: y * HEIGHT, y2: y * HEIGHT }));
    chart.lines.forEach((line, i) => {
      drawing.append(svg("path", { class: "area line-" + i, d: "" }));
      drawing.append(svg("path", { class: "stroke line-" + i, d: "" }));
    });
    plot.append(drawing, el("span", "chart-max", ""), el("span", "chart-zero", "0"));
    const axis = el("div", "chart-axis");
    axis.append(el("span", "", `−${WINDOW / 60} min`), el("span", "", "now"));
    figure.append(head, plot, axis);
    return figure;
  }

  function render(chart, figure) {
    const series = history.get(chart.id);
    const top = (chart.ceiling || niceCeiling)(Math.max(0, ...series.flat()));
    figure.querySelector(".chart-max").textContent = chart.format(top);
    const paths = figure.querySelectorAll("path");
    series.forEach((points, i) => {
      const x = (k) => (WIDTH * (WINDOW - points.length + k)) / (WINDOW - 1);
      const y = (v) => HEIGHT - (HEIGHT * v) / top;
      const stroke = points.map((v, k) => `${k ? "L" : "M"}${x(k).toFixed(1)} ${y(v).toFixed(1)}`).join(" ");
      paths[2 * i].setAttribute("d", points.length ? `${stroke} L${x(points.length - 1).toFixed(1)} ${HEIGHT} L${x(0).toFixed(1)} ${HEIGHT} Z` : "");
      paths[2 * i + 1].setAttribute("d", stroke);
      const current = points.length ? points[points.length - 1] : 0;
      figure.querySelector(`[data-line="${chart.lines[i].key}"] .chart-number`).textContent = chart.format(current);
      if (i === 0) figure.dataset.current = String(current);
      figure.dataset["current" + chart.lines[i].key[0].toUpperCase() + chart.lines[i].key.slice(1)] = String(current);
    });
    figure.dataset.points = String(series[0].length);
  }

  function start(container) {
    const figures = CHARTS.map((chart) => [chart, build(chart)]);
    container.replaceChildren(...figures.map(([, f]) => f));
    const note = document.getElementById("charts-processes");
    setInterval(() => {
      const procs = live();
      for (const [chart, figure] of figures) {
        const series = history.get(chart.id);
        chart.lines.forEach((line, i) => {
          series[i].push(point(line, procs));
          if (series[i].length > WINDOW) series[i].shift();
        });
        render(chart, figure);
      }
      if (note) {
        note.textContent = procs.length
          ? `Summed over ${procs.length} server ${procs.length === 1 ? "process" : "processes"}: ${procs.map((p) => p.name).join(", ")}`
          : "Waiting for the server processes' first samples…";
      }
    }, 1000);
  }

  window.ConciergeCharts = { sample };

  const container = document.getElementById("charts");
  if (container) start(container);
})();
