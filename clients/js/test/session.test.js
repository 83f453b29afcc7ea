// The websocket session: IDENTIFY/HELLO, every call with its replies and refusals, events.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  ConciergeClient,
  ConnectionClosedError,
  NotConnectedError,
  ReplyError,
  webSocketClass,
} from "../dist/index.js";
import { SERVER, closeAll, connected, track, uniqueName } from "./support.js";

after(closeAll);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function refused(promise, type) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ReplyError, `expected a ReplyError, got ${error}`);
    assert.equal(error.type, type);
    return true;
  });
}

describe("connect", () => {
  test("connect resolves with HELLO: the key, the server's version and the client's public info", async () => {
    const name = uniqueName();
    const client = track(new ConciergeClient(SERVER, { name, nickname: "Nick", tags: ["a", "b"] }));
    const hello = await client.connect();
    assert.equal(hello.type, "HELLO");
    assert.match(hello.uuid, UUID);
    assert.match(hello.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual({ ...hello.client, uuid: undefined }, { name, nickname: "Nick", tags: ["a", "b"], uuid: undefined });
    assert.notEqual(hello.client.uuid, hello.uuid, "the public id is not the secret key");
    assert.equal(client.key, hello.uuid);
    assert.equal(client.status, "open");
  });

  test("the WebSocket class is the platform's when there is one, else the ws package's", async () => {
    const used = await webSocketClass();
    if (globalThis.WebSocket) assert.equal(used, globalThis.WebSocket);
    else assert.equal(used, (await import("ws")).WebSocket);
  });

  test("the base URL gives ws://.../ws, /fs/ and /tus/", () => {
    const client = new ConciergeClient("http://example.test:1234/prefix/", { name: "x" });
    assert.deepEqual(client.urls, {
      base: "http://example.test:1234/prefix",
      ws: "ws://example.test:1234/prefix/ws",
      fs: "http://example.test:1234/prefix/fs/",
      tus: "http://example.test:1234/prefix/tus/",
    });
    assert.equal(new ConciergeClient("https://h", { name: "x" }).urls.ws, "wss://h/ws");
  });

  test("a refused IDENTIFY rejects connect with the close code: 4005 taken name, 4008 bad name, 4007 bad version", async () => {
    const first = await connected();
    const cases = [
      [{ name: first.name }, 4005],
      [{ name: "not a name!" }, 4008],
      [{ name: uniqueName(), version: "1.0.0" }, 4007],
    ];
    for (const [options, code] of cases) {
      const client = new ConciergeClient(SERVER, options);
      await assert.rejects(client.connect(), (error) => {
        assert.ok(error instanceof ConnectionClosedError);
        assert.equal(error.code, code);
        return true;
      });
      assert.equal(client.status, "closed");
    }
  });

  test("close() during connect() wins: connect rejects and the client stays closed", async () => {
    const client = new ConciergeClient(SERVER, { name: uniqueName() });
    const connecting = client.connect();
    client.close();
    await assert.rejects(connecting, ConnectionClosedError);
    assert.equal(client.status, "closed");
    assert.equal(client.key, null);
  });

  test("calls before connect() and after close() reject with NotConnectedError", async () => {
    const client = new ConciergeClient(SERVER, { name: uniqueName() });
    await assert.rejects(client.fetchClients(), NotConnectedError);
    await client.connect();
    client.close();
    await assert.rejects(client.fetchClients(), NotConnectedError);
  });
});

describe("messages", () => {
  test("sendTo by name and by public id delivers with origin, and answers OK", async () => {
    const [a, b] = [await connected(), await connected()];
    const received = b.once("MESSAGE");
    const ok = await a.sendTo(b.name, { hello: [1, 2] });
    assert.deepEqual(ok, { type: "OK", seq: 0 });
    const message = await received;
    assert.deepEqual(message.data, { hello: [1, 2] });
    assert.equal(message.origin.name, a.name);
    assert.equal(message.origin.uuid, a.client.uuid);
    const byId = b.once("MESSAGE");
    await a.sendTo({ uuid: b.client.uuid }, "by id");
    assert.equal((await byId).data, "by id");
  });

  test("broadcast reaches every client, the sender included", async () => {
    const [a, b] = [await connected(), await connected()];
    const data = uniqueName("all");
    const match = (event) => event.data === data;
    const both = Promise.all([a.once("MESSAGE", { match }), b.once("MESSAGE", { match })]);
    await a.broadcast(data);
    const [toA, toB] = await both;
    assert.equal(toA.origin.name, a.name);
    assert.equal(toB.origin.name, a.name);
  });

  test("refused messages reject with typed errors: INVALID_NAME, INVALID_UUID, INVALID_SERVICE, BAD", async () => {
    const [a, b] = [await connected(), await connected()];
    await refused(a.sendTo("nobody_here_at_all", 1), "INVALID_NAME");
    await refused(a.sendTo({ uuid: "00000000-0000-4000-8000-000000000000" }, 1), "INVALID_UUID");
    await refused(a.sendToService("no_such_service", 1), "INVALID_SERVICE");
    const service = uniqueName("svc");
    await b.createService(service);
    await refused(a.sendToService(service, 1), "BAD"); // neither owner nor subscriber
    await refused(a.sendToServiceClient(service, b.client.uuid, 1), "BAD"); // not the owner
    const error = await a.sendTo("nobody_here_at_all", 1).catch((e) => e);
    assert.equal(error.requestType, "MESSAGE");
    assert.equal(error.reply.type, "INVALID_NAME");
  });

  test("unknown payloads and malformed fields reject with ERROR_UNSUPPORTED and ERROR_PROTOCOL; the socket stays", async () => {
    const a = await connected();
    await refused(a.call({ type: "NO_SUCH_THING" }), "ERROR_UNSUPPORTED");
    await refused(a.call({ type: "MESSAGE", target: 5, data: 1 }), "ERROR_PROTOCOL");
    assert.equal((await a.fetchSelf()).client.name, a.name);
  });
});

describe("services", () => {
  test("create, fetch, subscribe, message through, unsubscribe and delete a service", async () => {
    const [owner, member] = [await connected(), await connected()];
    const service = uniqueName("svc");
    const created = await owner.createService(service, "A service");
    assert.deepEqual(created, { name: service, nickname: "A service", owner_uuid: owner.client.uuid, subscribers: [] });
    await assert.rejects(member.createService(service), (error) => error instanceof ReplyError && error.reply.successful === false);

    const joined = await member.subscribe(service);
    assert.equal(joined.name, service);
    assert.deepEqual((await owner.fetchService(service)).subscribers, [member.client.uuid]);
    assert.ok((await member.fetchServices()).some((info) => info.name === service));
    assert.deepEqual((await member.fetchSelf()).subscriptions.map((s) => s.name ?? s), [service]);

    const toMember = member.once("MESSAGE");
    await owner.sendToService(service, "to subscribers");
    assert.equal((await toMember).origin.service.name, service);
    const toOwner = owner.once("MESSAGE");
    await member.sendToService(service, "to the owner");
    assert.equal((await toOwner).data, "to the owner");
    const direct = member.once("MESSAGE");
    await owner.sendToServiceClient(service, member.client.uuid, "just you");
    assert.equal((await direct).data, "just you");

    await member.unsubscribe(service);
    assert.deepEqual((await owner.fetchService(service)).subscribers, []);
    await refused(member.deleteService(service), "BAD");
    const gone = member.once("SERVICE_DELETE_RESULT");
    assert.equal((await owner.deleteService(service)).name, service);
    assert.equal((await gone).service.name, service);
    await refused(owner.fetchService(service), "INVALID_SERVICE");
    await refused(member.subscribe(service), "INVALID_SERVICE");
    await refused(member.unsubscribe(service), "INVALID_SERVICE");
  });
});

describe("fetches and seq", () => {
  test("fetchSelf, fetchClient, fetchClients; an unknown uuid is INVALID_UUID", async () => {
    const [a, b] = [await connected({ tags: ["t"] }), await connected()];
    assert.deepEqual((await a.fetchSelf()).client, a.client);
    const other = await a.fetchClient(b.client.uuid);
    assert.equal(other.client.name, b.name);
    assert.deepEqual(other.subscriptions, []);
    const names = (await a.fetchClients()).map((info) => info.name);
    assert.ok(names.includes(a.name) && names.includes(b.name));
    await refused(a.fetchClient("00000000-0000-4000-8000-000000000000"), "INVALID_UUID");
  });

  test("setSeq renumbers: its OK carries the new seq and the next reply the one after", async () => {
    const a = await connected();
    const ok = await a.call({ type: "SELF_SET_SEQ", seq: 100 });
    assert.deepEqual(ok, { type: "OK", seq: 100 });
    const next = await a.call({ type: "SELF_FETCH" });
    assert.equal(next.seq, 101);
    await a.setSeq(7);
    assert.equal((await a.call({ type: "SELF_FETCH" })).seq, 8);
  });
});

describe("events", () => {
  test("on(type) gets server events; the returned function removes the handler", async () => {
    const a = await connected();
    const joined = [];
    const off = a.on("CLIENT_JOINED", (event) => joined.push(event.client.name));
    const names = [uniqueName(), uniqueName()];
    const bJoined = a.once("CLIENT_JOINED", { match: (event) => event.client.name === names[0] });
    const b = await connected({ name: names[0] });
    await bJoined;
    assert.ok(joined.includes(b.name));
    const left = a.once("CLIENT_LEFT", { match: (event) => event.client.name === b.name });
    off();
    const cJoined = a.once("CLIENT_JOINED", { match: (event) => event.client.name === names[1] });
    await connected({ name: names[1] });
    await cJoined;
    assert.ok(!joined.includes(names[1]), "the removed handler was not called");
    b.close();
    assert.equal((await left).type, "CLIENT_LEFT");
  });

  test("on('*') sees every event; a handler that throws is reported as an 'error' event", async () => {
    const a = await connected();
    const errors = [];
    a.on("error", (event) => errors.push(event.error));
    a.on("MESSAGE", () => {
      throw new Error("handler bug");
    });
    const all = a.once("*", { match: (event) => event.type === "MESSAGE" });
    await a.sendTo(a.name, "self");
    assert.equal((await all).data, "self");
    assert.equal(errors[0].message, "handler bug");
  });

  test("for await yields events in order and ends when the client closes", async () => {
    const [a, b] = [await connected(), await connected()];
    const seen = [];
    const reading = (async () => {
      for await (const event of a) {
        if (event.type === "MESSAGE") seen.push(event.data);
        else if (event.type === "closed") seen.push(event.type);
      }
    })();
    const third = a.once("MESSAGE", { match: (event) => event.data === 3 });
    for (const n of [1, 2, 3]) await b.sendTo(a.name, n);
    await third;
    a.close();
    await reading;
    assert.deepEqual(seen, [1, 2, 3, "closed"]);
  });

  test("breaking out of for await detaches the reader", async () => {
    const [a, b] = [await connected(), await connected()];
    const reading = (async () => {
      for await (const event of a) if (event.type === "MESSAGE") return event.data;
    })();
    await b.sendTo(a.name, "first");
    assert.equal(await reading, "first");
  });

  test("close() ends the session with 1000: 'closed' event, and the others hear CLIENT_LEFT", async () => {
    const [a, b] = [await connected(), await connected()];
    const closed = a.once("closed");
    const left = b.once("CLIENT_LEFT", { match: (event) => event.client.name === a.name });
    const reconnecting = [];
    a.on("reconnecting", (event) => reconnecting.push(event));
    a.close();
    assert.equal((await closed).code, 1000);
    await left;
    assert.equal(a.status, "closed");
    assert.deepEqual(reconnecting, []);
  });
});

describe("pw_file over the websocket", () => {
  test("listFiles collects the FILE_LIST_RESULT frames; deleteFile removes; NOT_FOUND is a ReplyError", async () => {
    const a = await connected();
    await a.files.upload("dir/one.txt", "1");
    await a.files.upload("two.txt", "22");
    const root = await a.listFiles(a.name);
    assert.deepEqual(root.map((entry) => entry.path).sort(), ["dir", "two.txt"]);
    assert.equal(root.find((entry) => entry.path === "two.txt").size_bytes, 2);
    assert.equal(root.find((entry) => entry.path === "two.txt").permissions, 3);
    await a.deleteFile(`${a.name}/two.txt`);
    assert.deepEqual((await a.listFiles(a.name)).map((entry) => entry.path), ["dir"]);
    await refused(a.listFiles(`${a.name}/nothing`), "NOT_FOUND");
  });

  test("listFiles gathers a listing streamed over several frames", async () => {
    const a = await connected();
    // The server sends 500 entries a frame; a form takes at most 100 files (Django's limit).
    for (let batch = 0; batch < 510; batch += 100) {
      const count = Math.min(100, 510 - batch);
      await a.files.postFiles(Array.from({ length: count }, (_, i) => ({ name: `f${batch + i}.txt`, body: "x" })));
    }
    const entries = await a.listFiles(a.name);
    assert.equal(entries.length, 510);
    assert.equal(new Set(entries.map((entry) => entry.path)).size, 510);
  });
});
