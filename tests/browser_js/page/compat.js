// What the original ERT Concierge's browser front-end does against a concierge, step by step:
// websocket + IDENTIFY, multipart upload with fetch + FormData + x-fs-key, PUT, GET with Range,
// GET, DELETE, a resumable upload with tus-js-client. Each step's outcome goes to window.results;
// window.results.done is set at the end (tests/test_ert_compat_browser.py reads it).
"use strict";

const params = new URLSearchParams(location.search);
const server = params.get("server") || location.origin;
const name = params.get("name");
const results = (window.results = {});

function show(step, value) {
  results[step] = value;
  document.getElementById("log").textContent += `${step}: ${JSON.stringify(value)}\n`;
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function identify() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.replace(/^http/, "ws") + "/ws", "ert-concierge");
    ws.onopen = () =>
      ws.send(JSON.stringify({ type: "IDENTIFY", name, nickname: "browser", version: "0.2.0", tags: ["browser"] }));
    ws.onmessage = (event) => {
      const payload = JSON.parse(event.data);
      if (payload.type === "HELLO") resolve({ ws, hello: payload });
    };
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onclose = (event) => reject(new Error(`websocket closed ${event.code} ${event.reason}`));
  });
}

function nextMessage(ws) {
  return new Promise((resolve) => {
    ws.onmessage = (event) => {
      const payload = JSON.parse(event.data);
      if (payload.type === "MESSAGE") resolve(payload);
    };
  });
}

function tusUpload(endpoint, key, body) {
  return new Promise((resolve) => {
    const upload = new tus.Upload(body, {
      endpoint,
      headers: { "x-fs-key": key },
      chunkSize: 16 * 1024,
      metadata: { filename: "tus/big.txt", filetype: "text/plain" },
      retryDelays: [],
      onSuccess: () => resolve({ ok: true, url: upload.url }),
      onError: (error) => resolve({ ok: false, error: String(error) }),
    });
    upload.start();
  });
}

async function run() {
  const { ws, hello } = await identify();
  const key = hello.uuid;
  show("hello", { subprotocol: ws.protocol, keyIsPublicId: hello.uuid === hello.client.uuid });

  // A front-end that compares its HELLO uuid with origin.uuid: a message to itself.
  const arrived = nextMessage(ws);
  ws.send(JSON.stringify({ type: "MESSAGE", target: { type: "NAME", name }, data: { ping: 1 } }));
  const own = await arrived;
  show("ownMessage", { originIsPublicId: own.origin.uuid === hello.client.uuid, originIsKey: own.origin.uuid === key });

  const base = `${server}/fs/${name}`;
  const form = new FormData();
  form.append("file", new Blob(["hello from a form"], { type: "text/plain" }), "form.txt");
  let response = await fetch(`${base}/uploads/form.txt`, { method: "POST", headers: { "x-fs-key": key }, body: form });
  show("post", { status: response.status, body: await response.json() });

  const bytes = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const checksum = await sha256Hex(bytes);
  response = await fetch(`${base}/data.bin`, {
    method: "PUT",
    headers: { "x-fs-key": key, "Content-Type": "application/octet-stream", "X-Checksum-SHA256": checksum },
    body: bytes,
  });
  show("put", { status: response.status, body: await response.json(), checksum });

  response = await fetch(`${base}/data.bin`, { headers: { "x-fs-key": key, Range: "bytes=10-19" } });
  show("range", {
    status: response.status,
    contentRange: response.headers.get("Content-Range"),
    etag: response.headers.get("ETag"),
    bytes: Array.from(new Uint8Array(await response.arrayBuffer())),
  });

  response = await fetch(`${base}/uploads/form.txt`, { headers: { "x-fs-key": key } });
  show("get", {
    status: response.status,
    disposition: response.headers.get("Content-Disposition"),
    length: response.headers.get("Content-Length"),
    text: await response.text(),
  });

  response = await fetch(`${base}/data.bin`, { method: "DELETE", headers: { "x-fs-key": key } });
  show("delete", { status: response.status });
  response = await fetch(`${base}/data.bin`, { headers: { "x-fs-key": key } });
  show("afterDelete", { status: response.status, error: (await response.json()).error });

  const tusBody = "tus ".repeat(20000);
  show("tus", await tusUpload(`${server}/tus/${name}/`, key, new Blob([tusBody])));
  response = await fetch(`${base}/tus/big.txt`, { headers: { "x-fs-key": key } });
  const fetched = await response.text();
  show("tusGet", { status: response.status, same: fetched === tusBody });

  response = await fetch(`${base}/`, { headers: { "x-fs-key": key } });
  show("listing", { status: response.status, paths: (await response.json()).entries.map((e) => e.path).sort() });
  ws.close();
}

run().then(
  () => (results.done = true),
  (error) => {
    show("error", String(error));
    results.done = true;
  },
);
