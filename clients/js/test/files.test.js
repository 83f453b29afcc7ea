// The file API through the client: uploads and downloads with progress, forms, listings, tus.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as tus from "tus-js-client";
import { ConciergeClient, HttpError, NotConnectedError } from "../dist/index.js";
import { SERVER, assertMonotonic, closeAll, connected, progressLog, uniqueName } from "./support.js";

let scratch;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "concierge-js-"));
});
after(async () => {
  closeAll();
  await rm(scratch, { recursive: true, force: true });
});

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function refusedHttp(promise, status, error) {
  await assert.rejects(promise, (thrown) => {
    assert.ok(thrown instanceof HttpError, `expected an HttpError, got ${thrown}`);
    assert.equal(thrown.status, status);
    assert.equal(thrown.error, error);
    assert.ok(thrown.detail.length > 0, "the refusal says what was wrong");
    return true;
  });
}

describe("upload and download", () => {
  test("upload reports progress up to the size and answers the stored file; download streams it back with progress", async () => {
    const a = await connected();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const up = progressLog();
    const stored = await a.files.upload("data/blob.bin", data, { onProgress: up.record });
    assert.equal(stored.size, data.length);
    assert.equal(stored.sha256, sha256(data));
    assert.equal(stored.path, "data/blob.bin");
    assertMonotonic(assert, up.calls, data.length);
    assert.ok(up.calls.length > 2, "progress moves in steps");
    assert.ok(up.calls.every(([, total]) => total === data.length));

    const b = await connected();
    const down = progressLog();
    const blob = await b.files.download("data/blob.bin", { client: a.name, onProgress: down.record });
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), data);
    assert.equal(blob.type, "application/octet-stream");
    assertMonotonic(assert, down.calls, data.length);
    assert.equal(down.calls.at(-1)[1], data.length);
  });

  test("strings, Blobs and streams upload too", async () => {
    const a = await connected();
    await a.files.upload("s.txt", "héllo");
    const text = await a.files.download("s.txt");
    assert.equal(await text.text(), "héllo");
    assert.equal(text.type, "text/plain");
    await a.files.upload("b.bin", new Blob([new Uint8Array([1, 2, 3])]));
    assert.deepEqual([...new Uint8Array(await (await a.files.download("b.bin")).arrayBuffer())], [1, 2, 3]);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("from "));
        controller.enqueue(new TextEncoder().encode("a stream"));
        controller.close();
      },
    });
    const up = progressLog();
    const stored = await a.files.upload("stream.txt", stream, { onProgress: up.record });
    assert.equal(stored.size, 13);
    assert.deepEqual(up.calls, [[5, undefined], [13, undefined]]);
    assert.equal(await (await a.files.download("stream.txt")).text(), "from a stream");
  });

  test("an empty file reports its progress once, at 0", async () => {
    const a = await connected();
    const up = progressLog();
    assert.equal((await a.files.upload("empty.txt", "", { onProgress: up.record })).size, 0);
    assert.deepEqual(up.calls, [[0, 0]]);
    const down = progressLog();
    assert.equal((await a.files.download("empty.txt", { onProgress: down.record })).size, 0);
    assert.deepEqual(down.calls, [[0, 0]]);
  });

  test("Node: uploadFile streams a local file, downloadToFile writes one and checks its SHA-256", async () => {
    const a = await connected();
    const data = randomBytes(2 * 1024 * 1024);
    const source = join(scratch, "source.bin");
    await writeFile(source, data);
    const up = progressLog();
    const stored = await a.files.uploadFile(source, "disk/copy.bin", { onProgress: up.record });
    assert.equal(stored.sha256, sha256(data));
    assertMonotonic(assert, up.calls, data.length);
    const target = join(scratch, "target.bin");
    const down = progressLog();
    const result = await a.files.downloadToFile("disk/copy.bin", target, { onProgress: down.record });
    assert.deepEqual(result, { size: data.length, sha256: sha256(data) });
    assert.deepEqual(await readFile(target), data);
    assertMonotonic(assert, down.calls, data.length);
  });

  test("a declared SHA-256 that the bytes do not match is refused with 400 checksum_mismatch", async () => {
    const a = await connected();
    await refusedHttp(a.files.upload("x.bin", "abc", { sha256: sha256(Buffer.from("abd")) }), 400, "checksum_mismatch");
    const ok = await a.files.upload("x.bin", "abc", { sha256: sha256(Buffer.from("abc")) });
    assert.equal(ok.size, 3);
  });

  test("the key goes in x-fs-key when asked", async () => {
    const a = await connected({ keyHeader: "x-fs-key" });
    assert.deepEqual(Object.keys(a.files.headers()), ["x-fs-key"]);
    await a.files.upload("k.txt", "key header");
    assert.equal(await (await a.files.download("k.txt")).text(), "key header");
  });

  test("refusals are HttpErrors with the status, error code and detail: 404, 400, 401", async () => {
    const a = await connected();
    await refusedHttp(a.files.download("missing.txt"), 404, "not_found");
    await refusedHttp(a.files.download("a.txt", { client: "nobody_here_at_all" }), 404, "not_found");
    await refusedHttp(a.files.upload("a//b.txt", "x"), 400, "invalid_path");
    await refusedHttp(a.files.delete("missing.txt"), 404, "not_found");
    const stale = new ConciergeClient(SERVER, { name: uniqueName() });
    await stale.connect();
    const files = stale.files;
    const key = stale.key;
    // CLIENT_LEFT is the last step of the server's leave sequence: the key is dead by then.
    const left = a.once("CLIENT_LEFT", { match: (event) => event.client.name === stale.name });
    stale.close();
    await left;
    await assert.rejects(files.upload("late.txt", "x"), NotConnectedError);
    const response = await fetch(`${SERVER}/fs/${stale.name}/late.txt`, { method: "PUT", body: "x", headers: { Authorization: key } });
    assert.equal(response.status, 401, "the key dies with the socket");
  });
});

describe("forms, listings, deletes", () => {
  test("postFile and postFiles send multipart forms with progress", async () => {
    const a = await connected();
    const up = progressLog();
    const one = await a.files.postFile("forms/one.txt", "first file", { onProgress: up.record });
    assert.equal(one.path, "forms/one.txt");
    assert.equal(up.calls.at(-1)[0], up.calls.at(-1)[1]);
    const many = await a.files.postFiles([
      { name: "p.txt", body: "pp" },
      { name: "q.json", body: '{"q": 1}', contentType: "application/json" },
    ]);
    assert.deepEqual(many.map((file) => [file.path, file.size]), [["p.txt", 2], ["q.json", 8]]);
    assert.equal(await (await a.files.download("forms/one.txt")).text(), "first file");
  });

  test("list shows a folder over HTTP, delete removes a file", async () => {
    const [a, b] = [await connected(), await connected()];
    await a.files.upload("docs/readme.txt", "read me");
    await a.files.upload("top.txt", "top");
    const mine = await a.files.list();
    assert.deepEqual(mine.entries.map((entry) => [entry.path, entry.type]).sort(), [["docs", "directory"], ["top.txt", "file"]]);
    const sub = await b.files.list("docs", { client: a.name });
    assert.deepEqual(sub.entries.map((entry) => [entry.path, entry.size_bytes, entry.permissions]), [["readme.txt", 7, 1]]);
    const root = await b.files.list("", { client: "" });
    assert.ok(root.entries.some((entry) => entry.path === a.name));
    await a.files.delete("top.txt");
    assert.deepEqual((await a.files.list()).entries.map((entry) => entry.path), ["docs"]);
    await refusedHttp(b.files.download("top.txt", { client: a.name }), 404, "not_found");
  });
});

describe("tus", () => {
  test("uploadResumable stores a file through /tus/ with progress", async () => {
    const a = await connected();
    const data = randomBytes(1024 * 1024 + 5);
    const up = progressLog();
    const url = await a.files.uploadResumable("tus/whole.bin", data, { chunkSize: 256 * 1024, onProgress: up.record, contentType: "application/x-test" });
    assert.ok(url.startsWith(`${a.urls.tus}${a.name}/`), url);
    assertMonotonic(assert, up.calls, data.length);
    const blob = await a.files.download("tus/whole.bin");
    assert.equal(blob.type, "application/x-test");
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), data);
  });

  test("an aborted resumable upload continues where it stopped", async () => {
    const a = await connected();
    const data = randomBytes(1024 * 1024);
    const urlStorage = new tus.FileUrlStorage(join(scratch, "tus-urls.json"));
    const chunkSize = 256 * 1024;
    let running;
    const stopped = a.files
      .uploadResumable("tus/resumed.bin", data, {
        chunkSize,
        tusOptions: {
          urlStorage,
          retryDelays: null,
          onChunkComplete: (_size, sent) => {
            if (sent === 2 * chunkSize) running.abort();
          },
        },
        onStart: (upload) => (running = upload),
      })
      .then(() => "finished", () => "failed");
    // abort() stops without onSuccess or onError: the promise stays pending, so wait for the server.
    const offsetUrl = await until(async () => running?.url);
    await until(async () => {
      const head = await fetch(offsetUrl, { method: "HEAD", headers: { ...a.files.headers(), "Tus-Resumable": "1.0.0" } });
      return head.headers.get("upload-offset") === String(2 * chunkSize);
    });
    await refusedHttp(a.files.download("tus/resumed.bin"), 404, "not_found");
    const up = progressLog();
    const url = await a.files.uploadResumable("tus/resumed.bin", data, { chunkSize, tusOptions: { urlStorage }, onProgress: up.record });
    assert.equal(url, offsetUrl, "the second run found the stored upload URL");
    assert.ok(up.calls[0][0] >= 2 * chunkSize, `it started at ${up.calls[0][0]}, not at the stored offset`);
    assert.deepEqual(Buffer.from(await (await a.files.download("tus/resumed.bin")).arrayBuffer()), data);
    assert.equal(await Promise.race([stopped, Promise.resolve("pending")]), "pending");
  });
});

async function until(check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
