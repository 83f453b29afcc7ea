/* The operator dashboard: renders the JSON endpoints, then applies live deltas.
 *
 * Plain JavaScript, no dependencies, nothing from the internet. The page asks
 * the server for one page of clients, services and (for the selected client)
 * files; after that, the websocket /dashboard/ws sends only what changed and
 * this script patches the rows in place: no reload, no refetch per event.
 * Every value from the server reaches the DOM through textContent.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const $ = (id) => document.getElementById(id);
  const perPage = config.per_page;

  // -- formatting ------------------------------------------------------------------

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function humanBytes(n) {
    if (n < 1024) return n + " B";
    let i = 0;
    let v = n;
    while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " " + UNITS[i];
  }

  const number = new Intl.NumberFormat();

  // Use against a quota (docs/limits.md): the figure, then a bar (a <meter>, no text of its
  // own) with "used of quota (share)" in its title; only the figure without a quota.
  function withQuota(used, quota, format, unit) {
    const figure = format(used);
    if (quota === null || quota === undefined) return [figure];
    const share = quota > 0 ? Math.round((100 * used) / quota) : 100;
    return [figure, el("meter", {
      class: "quota", min: 0, max: quota, value: Math.min(used, quota), high: 0.9 * quota, optimum: 0,
      title: `${number.format(used)} of ${number.format(quota)} ${unit} (${share}%)`,
    })];
  }

  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 10) return "just now";
    if (seconds < 60) return seconds + " s ago";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.floor(hours / 24) + " days ago";
  }

  const pad = (n) => String(n).padStart(2, "0");

  // Local time, ISO-like and unambiguous: 2026-11-21 08:52:37.
  function absolute(iso) {
    const d = new Date(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node && key !== "list") node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function timeCell(iso) {
    if (!iso) return el("span", { class: "muted", text: "–" });
    return el("span", { class: "time", title: iso },
      el("span", { class: "ago", "data-time": iso, text: ago(iso) }),
      el("span", { class: "abs", text: absolute(iso) }));
  }

  function tags(list) {
    return list.length ? el("span", { class: "tags" }, list.map((t) => el("span", { class: "tag", text: t }))) : null;
  }

  // -- state -----------------------------------------------------------------------

  function listState(size) {
    return { q: "", page: 1, pages: 1, count: 0, perPage: size, rows: [], loaded: false };
  }

  const state = {
    clients: listState(perPage.clients),
    services: listState(perPage.services),
    files: Object.assign(listState(perPage.files), { client: null, detail: null, gone: false }),
  };
  let inFlight = 0;
  const queued = [];

  // -- HTTP ------------------------------------------------------------------------

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 401) { window.location.reload(); throw new Error("logged out"); }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.detail || response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": config.csrf_token, Accept: "application/json" },
      body: new URLSearchParams(data),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || "HTTP " + response.status);
    return body;
  }

  function query(list) {
    const params = new URLSearchParams({ page: String(list.page) });
    if (list.q) params.set("q", list.q);
    return "?" + params.toString();
  }

  // Deltas that arrive while a page is being fetched wait for it: they carry the
  // state after their events, so applying them last can never go backwards.
  async function loading(work) {
    inFlight++;
    try {
      await work();
    } catch (error) {
      toast("Could not load: " + error.message, true);
    } finally {
      inFlight--;
      if (!inFlight) while (queued.length) applyDelta(queued.shift());
    }
  }

  function take(list, body) {
    Object.assign(list, { page: body.page, pages: body.pages, count: body.count, rows: body.results, loaded: true });
  }

  function loadClients() {
    return loading(async () => {
      const body = await getJSON(config.urls.clients + query(state.clients));
      take(state.clients, body);
      renderStats(body.stats);
      renderClients();
    });
  }

  function loadServices() {
    return loading(async () => {
      take(state.services, await getJSON(config.urls.services + query(state.services)));
      renderServices();
    });
  }

  function loadFiles() {
    const files = state.files;
    if (!files.client) { renderFiles(); return Promise.resolve(); }
    const name = files.client;
    return loading(async () => {
      const url = config.urls.files.replace("__client__", encodeURIComponent(name)) + query(files);
      try {
        const body = await getJSON(url);
        if (files.client !== name) return;
        take(files, body);
        files.detail = body.client;
        files.gone = false;
      } catch (error) {
        if (error.status !== 404) throw error;
        Object.assign(files, { detail: null, rows: [], count: 0, pages: 1, gone: true });
      }
      renderFiles();
    });
  }

  function loadAll() {
    return Promise.all([loadClients(), loadServices(), loadFiles()]);
  }

  // -- rendering -------------------------------------------------------------------

  function renderStats(stats) {
    if (!stats) return;
    $("stat-clients").textContent = number.format(stats.clients);
    $("stat-files").textContent = number.format(stats.files);
    $("stat-bytes").replaceChildren(...withQuota(stats.bytes, stats.quota_bytes, humanBytes, "bytes"));
    $("stat-bytes").title = number.format(stats.bytes) + " bytes";
    $("stat-services").textContent = number.format(stats.services);
    $("stat-servers").textContent = number.format(stats.servers.filter((s) => s.alive).length);
    $("stat-servers-list").replaceChildren(...stats.servers.map((s) =>
      el("span", { class: s.alive ? "server" : "server dead", title: s.alive ? "alive" : "lease lapsed",
        text: `${s.name} · ${number.format(s.clients)} ${s.clients === 1 ? "client" : "clients"}` })));
  }

  function renderPager(nav, list, reload) {
    nav.replaceChildren();
    if (list.pages <= 1) return;
    const first = (list.page - 1) * list.perPage + 1;
    const last = Math.min(list.count, list.page * list.perPage);
    const go = (page) => () => { list.page = page; reload(); };
    nav.append(
      el("button", { type: "button", class: "small", disabled: list.page <= 1, onclick: go(list.page - 1), text: "‹ Previous" }),
      el("span", { class: "muted", text: `${number.format(first)}–${number.format(last)} of ${number.format(list.count)} · page ${list.page} of ${list.pages}` }),
      el("button", { type: "button", class: "small", disabled: list.page >= list.pages, onclick: go(list.page + 1), text: "Next ›" }),
    );
  }

  function empty(box, title, text) {
    box.replaceChildren(el("strong", { text: title }), el("span", { text }));
    box.hidden = false;
  }

  function flash(row, fresh) {
    if (fresh) row.classList.add("flash");
    return row;
  }

  function clientRow(c, fresh) {
    const selected = state.files.client === c.name;
    return flash(el("tr", {
      class: selected ? "selected" : "", "data-name": c.name, tabIndex: 0,
      title: "Show the files of " + c.name,
      onclick: (event) => { if (!event.target.closest("button")) select(c.name); },
      onkeydown: (event) => { if (event.key === "Enter") select(c.name); },
    },
    el("td", { class: "client" },
      el("div", {}, el("span", { class: "name", text: c.name }), tags(c.tags)),
      el("div", { class: "sub" },
        c.nickname ? el("span", { class: "nickname", text: c.nickname }) : null,
        el("span", { class: "version", text: "v" + c.version }),
        c.away_until ? el("span", { class: "away", title: "connection dropped; held for a resume until " + c.away_until,
          text: "away, " + Math.max(0, Math.round((Date.parse(c.away_until) - Date.now()) / 1000)) + " s left" }) : null)),
    el("td", {}, timeCell(c.connected_at)),
    el("td", {}, el("code", { class: "server", title: "server process " + c.server_id, text: c.server })),
    el("td", { class: "num" }, withQuota(c.files, c.quota_files, (n) => number.format(n), "files")),
    el("td", { class: "num", title: number.format(c.bytes) + " bytes" }, withQuota(c.bytes, c.quota_bytes, humanBytes, "bytes")),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "small danger", onclick: () => disconnect(c), text: "Disconnect" }))), fresh);
  }

  function renderClients(fresh) {
    const list = state.clients;
    $("clients-table").tBodies[0].replaceChildren(...list.rows.map((c) => clientRow(c, fresh && fresh.has(c.name))));
    $("clients-count").textContent = list.loaded ? number.format(list.count) : "";
    $("clients-table").hidden = !list.rows.length;
    const box = $("clients-empty");
    box.hidden = true;
    if (!list.rows.length && list.loaded) {
      if (list.q) empty(box, `No clients match “${list.q}”`, "Try another filter, or clear it to see every client.");
      else empty(box, "No clients connected", "Clients appear here the moment they connect to /ws and IDENTIFY.");
    }
    renderPager($("clients-pager"), list, loadClients);
  }

  function renderDetail(detail) {
    const box = $("client-detail");
    box.hidden = !detail;
    if (!detail) { box.replaceChildren(); return; }
    const facts = el("dl", {},
      el("dt", { text: "Connected" }), el("dd", {}, timeCell(detail.connected_at)),
      el("dt", { text: "Server" }), el("dd", {}, el("code", { text: detail.server })),
      el("dt", { text: "Public id" }), el("dd", {}, el("code", { class: "id", text: detail.id })),
      el("dt", { text: "Owns" }), el("dd", { text: detail.owns.length ? detail.owns.join(", ") : "no services" }),
      el("dt", { text: "Subscribed" }), el("dd", { text: detail.subscribed.length ? detail.subscribed.join(", ") : "nothing" }));
    box.replaceChildren(
      el("div", { class: "detail-head" },
        el("div", {},
          el("span", { class: "name", text: detail.name }),
          detail.nickname ? el("span", { class: "nickname", text: detail.nickname }) : null,
          tags(detail.tags)),
        el("button", { type: "button", class: "small danger", onclick: () => disconnect(detail), text: "Disconnect" })),
      facts,
      el("p", { class: "muted summary", text: `${number.format(detail.files)} files · ${humanBytes(detail.bytes)}` }));
  }

  function fileRow(f, fresh) {
    return flash(el("tr", { "data-path": f.path },
      el("td", { class: "path" },
        el("a", { class: "download", href: f.download, download: "", title: "Download " + f.path }, downloadIcon(), f.path),
        el("div", { class: "sub" }, el("span", { class: "type", text: f.type }))),
      el("td", { class: "num", title: number.format(f.size) + " bytes", text: humanBytes(f.size) }),
      el("td", {}, timeCell(f.modified_at)),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "small danger", onclick: () => deleteFile(f), text: "Delete" }))), fresh);
  }

  function downloadIcon() {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "icon");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M8 2v8M4.5 6.5 8 10l3.5-3.5M3 13h10");
    svg.append(path);
    return svg;
  }

  function renderFiles(fresh) {
    const files = state.files;
    const filter = $("files-filter");
    filter.hidden = !files.client || files.gone;
    $("files-title").textContent = files.client ? "Files of " + files.client : "Files";
    renderDetail(files.gone ? null : files.detail);
    const table = $("files-table");
    table.tBodies[0].replaceChildren(...files.rows.map((f) => fileRow(f, fresh && fresh.has(f.path))));
    table.hidden = !files.rows.length;
    const box = $("files-empty");
    box.hidden = true;
    if (!files.client) empty(box, "No client selected", "Pick a client on the left to see its files.");
    else if (files.gone) empty(box, `${files.client} has left`, "Its files were deleted when it disconnected.");
    else if (!files.rows.length && files.loaded) {
      if (files.q) empty(box, `No files match “${files.q}”`, "Try another filter.");
      else empty(box, "No files yet", `Files that ${files.client} uploads to /fs/${files.client}/ appear here.`);
    }
    renderPager($("files-pager"), files, loadFiles);
  }

  function serviceRow(s, fresh) {
    const more = s.subscriber_count - s.subscribers.length;
    return flash(el("tr", { "data-name": s.name },
      el("td", { class: "client" },
        el("span", { class: "name", text: s.name }),
        s.nickname ? el("span", { class: "nickname", text: s.nickname }) : null),
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => select(s.owner), text: s.owner })),
      el("td", {}, s.subscriber_count
        ? el("span", { class: "tags" }, s.subscribers.map((n) => el("span", { class: "tag", text: n })),
          more > 0 ? el("span", { class: "muted", text: `+${number.format(more)} more` }) : null)
        : el("span", { class: "muted", text: "no subscribers" })),
      el("td", {}, timeCell(s.created_at))), fresh);
  }

  function renderServices(fresh) {
    const list = state.services;
    $("services-table").tBodies[0].replaceChildren(...list.rows.map((s) => serviceRow(s, fresh && fresh.has(s.name))));
    $("services-count").textContent = list.loaded ? number.format(list.count) : "";
    $("services-table").hidden = !list.rows.length;
    const box = $("services-empty");
    box.hidden = true;
    if (!list.rows.length && list.loaded) {
      if (list.q) empty(box, `No services match “${list.q}”`, "Try another filter.");
      else empty(box, "No services", "A client creates one with SERVICE_CREATE; it lasts until its owner leaves.");
    }
    renderPager($("services-pager"), list, loadServices);
  }

  // -- live deltas -----------------------------------------------------------------

  // Would a row with this key sit on the page the list shows (rows are in key order)?
  function onThisPage(list, key, field) {
    const rows = list.rows;
    if (!rows.length) return list.page === 1;
    if (key < rows[0][field]) return list.page === 1;
    if (key > rows[rows.length - 1][field]) return list.page >= list.pages && rows.length < list.perPage;
    return true;
  }

  // Patch a list with a delta section; returns the keys of rows added or changed.
  function merge(list, section, field) {
    const fresh = new Set();
    for (const key of section.remove) {
      const index = list.rows.findIndex((r) => r[field] === key);
      if (index >= 0) list.rows.splice(index, 1);
    }
    for (const row of section.upsert) {
      const key = row[field];
      const index = list.rows.findIndex((r) => r[field] === key);
      if (index >= 0) {
        list.rows[index] = row;
      } else if (onThisPage(list, key, field)) {
        const at = list.rows.findIndex((r) => r[field] > key);
        list.rows.splice(at < 0 ? list.rows.length : at, 0, row);
        if (list.rows.length > list.perPage) list.rows.pop();
      } else {
        continue;
      }
      fresh.add(key);
    }
    list.count = section.count;
    list.pages = Math.max(1, Math.ceil(section.count / list.perPage));
    return fresh;
  }

  function applyDelta(delta) {
    if (inFlight) { queued.push(delta); return; }
    renderStats(delta.stats);
    if (delta.clients && state.clients.loaded) {
      renderClients(merge(state.clients, delta.clients, "name"));
      // A client that left is no longer anyone's subscriber.
      const gone = new Set(delta.clients.remove);
      let touched = false;
      for (const s of state.services.rows) {
        const kept = s.subscribers.filter((n) => !gone.has(n));
        if (kept.length !== s.subscribers.length) {
          s.subscriber_count -= s.subscribers.length - kept.length;
          s.subscribers = kept;
          touched = true;
        }
      }
      if (touched && !delta.services) renderServices();
    }
    if (delta.services && state.services.loaded) renderServices(merge(state.services, delta.services, "name"));
    if (delta.files && delta.files.client === state.files.client) applyFiles(delta.files);
  }

  function applyFiles(section) {
    const files = state.files;
    if (!section.detail) {
      Object.assign(files, { detail: null, rows: [], count: 0, pages: 1, gone: true });
      renderFiles();
      return;
    }
    if (files.gone || !files.detail || files.detail.id !== section.detail.id) {
      loadFiles(); // a new session under the same name: its files are another set
      return;
    }
    files.detail = section.detail;
    renderFiles(merge(files, section, "path"));
  }

  // -- the socket ------------------------------------------------------------------

  let socket = null;
  let retries = 0;
  let firstLoad = null;

  function setLive(mode, text) {
    const pill = $("live");
    pill.className = "pill pill-" + mode;
    pill.textContent = text;
    document.body.dataset.live = mode;
  }

  function sendView() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({
        type: "view",
        clients_q: state.clients.q,
        services_q: state.services.q,
        client: state.files.client,
        files_q: state.files.q,
      }));
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.urls.socket);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        retries = 0;
        sendView();
        // Events may have been missed while the socket was down: start from fresh pages.
        clearTimeout(firstLoad);
        loadAll().then(() => setLive("on", "Live"));
      } else if (message.type === "delta") {
        applyDelta(message);
      } else if (message.type === "metrics") {
        if (window.ConciergeCharts) window.ConciergeCharts.sample(message); // charts.js
        if (window.ConciergeTransfers) window.ConciergeTransfers.sample(message); // transfers.js
      } else if (message.type === "error") {
        console.warn("dashboard socket:", message.detail);
      }
    };
    socket.onclose = (event) => {
      socket = null;
      if (event.code === 4403) {
        setLive("off", event.reason === "logged out" ? "Logged out" : "Not an operator");
        return;
      }
      retries++;
      const wait = Math.min(10, 2 ** Math.min(retries, 4) / 2);
      setLive("wait", "Reconnecting…");
      setTimeout(connect, wait * 1000);
    };
  }

  // -- actions ---------------------------------------------------------------------

  let toastTimer = null;

  function toast(text, bad) {
    const box = $("toast");
    box.textContent = text;
    box.className = bad ? "toast bad" : "toast";
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  async function disconnect(client) {
    const question = `Disconnect ${client.name}?\n\nIts websocket is closed (code 4010), its services end and all its files are deleted.`;
    if (!window.confirm(question)) return;
    try {
      await post(config.urls.disconnect, { client: client.id });
      toast(`Disconnected ${client.name}.`);
    } catch (error) {
      toast(`Could not disconnect ${client.name}: ${error.message}`, true);
    }
  }

  async function deleteFile(file) {
    const detail = state.files.detail;
    if (!detail) return;
    if (!window.confirm(`Delete ${file.path} from ${detail.name}?\n\nThis cannot be undone.`)) return;
    try {
      await post(config.urls.delete_file, { client: detail.id, path: file.path });
      toast(`Deleted ${file.path}.`);
    } catch (error) {
      toast(`Could not delete ${file.path}: ${error.message}`, true);
    }
  }

  function select(name) {
    const files = state.files;
    if (files.client === name && !files.gone) return;
    Object.assign(files, { client: name, detail: null, gone: false, q: "", page: 1, rows: [], loaded: false });
    $("files-filter").value = "";
    history.replaceState(null, "", "#client=" + encodeURIComponent(name));
    for (const row of $("clients-table").tBodies[0].rows) row.classList.toggle("selected", row.dataset.name === name);
    sendView();
    loadFiles();
  }

  function filterInput(input, list, reload) {
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        list.q = input.value.trim();
        list.page = 1;
        sendView();
        reload();
      }, 250);
    });
  }

  // -- start -----------------------------------------------------------------------

  filterInput($("clients-filter"), state.clients, loadClients);
  filterInput($("services-filter"), state.services, loadServices);
  filterInput($("files-filter"), state.files, loadFiles);

  const fromHash = /^#client=(.+)$/.exec(window.location.hash);
  if (fromHash) state.files.client = decodeURIComponent(fromHash[1]);

  setInterval(() => {
    for (const node of document.querySelectorAll("[data-time]")) node.textContent = ago(node.dataset.time);
  }, 15000);

  connect();
  // Without a socket (a proxy that drops websockets) the page still loads, just not live.
  firstLoad = setTimeout(loadAll, 1500);
})();
