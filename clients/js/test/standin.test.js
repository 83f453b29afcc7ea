// Reconnection paths the real server cannot be made to take on demand: close codes 4011,
// 4009 and 4002 on an established socket, refusals during a reconnection, and session
// resume (PROTOCOL section 5, which the concierge does not implement yet). A stand-in
// server (the ws package's WebSocketServer) speaks just enough of the protocol for them.
// Everything else is tested against the real server (session, files, reconnect tests).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { WebSocketServer } from "ws";
import { ConciergeClient, TimeoutError } from "../dist/index.js";

let server;
let url;
/** What the next IDENTIFY gets: a function (socket, identify) => void, taken in order. */
let script = [];
const identifies = [];
/** Every frame after IDENTIFY, across connections. */
const received = [];

before(async () => {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/ws" });
  await new Promise((resolve) => server.once("listening", resolve));
  url = `http://127.0.0.1:${server.address().port}`;
  server.on("connection", (socket) => {
    socket.once("message", (data) => {
      const identify = JSON.parse(String(data));
      identifies.push(identify);
      const step = script.shift() ?? hello();
      step(socket, identify);
    });
  });
});
after(() => server.close());

/** HELLO, then answers to every frame; with `endAfter`, the socket ends (`code`) once it answered that frame type. */
function hello(extra = {}, end = null) {
  return (socket, identify) => {
    const { absent: _absent, ...fields } = extra;
    socket.send(JSON.stringify({ type: "HELLO", uuid: crypto.randomUUID(), version: "0.2.3", client: { name: identify.name, nickname: null, uuid: crypto.randomUUID(), tags: [] }, ...fields }));
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data));
      received.push(frame);
      socket.seq = (socket.seq ?? -1) + 1;
      if (frame.type === "SILENT") return; // never answered
      if (frame.type === "SLOW") {
        const seq = socket.seq;
        setTimeout(() => socket.send(JSON.stringify({ type: "OK", seq })), 200);
        return;
      }
      if (frame.type === "SELF_SUBSCRIBE" && extra.absent === frame.service) {
        // The service's owner is not back yet: refused, then its creation is broadcast.
        socket.send(JSON.stringify({ type: "INVALID_SERVICE", service: frame.service, seq: socket.seq }));
        delete extra.absent;
        setTimeout(() => socket.send(JSON.stringify({ type: "SERVICE_CREATE_RESULT", successful: true, service: { name: frame.service } })), 50);
      } else if (frame.type === "SELF_SUBSCRIBE") socket.send(JSON.stringify({ type: "SELF_SUBSCRIBE_RESULT", successful: true, service: { name: frame.service }, seq: socket.seq }));
      else if (frame.type === "SERVICE_CREATE") socket.send(JSON.stringify({ type: "SERVICE_CREATE_RESULT", successful: true, service: { name: frame.service }, seq: socket.seq }));
      else socket.send(JSON.stringify({ type: "OK", seq: socket.seq }));
      if (end && frame.type === end.after) endWith(socket, end.code);
    });
  };
}
const endWith = (socket, code) => (code === 1006 ? socket.terminate() : socket.close(code, `ended with ${code}`));
const refuse = (code) => (socket) => socket.close(code, `refused with ${code}`);
/** HELLO, then the socket ends with `code` (or is cut, for 1006): once it answered a frame of type `after`, else at once. */
const helloThenEnd = (code, extra = {}, after = null) => (socket, identify) => {
  hello(extra, after ? { after, code } : null)(socket, identify);
  if (!after) setTimeout(() => endWith(socket, code), 20);
};

function fresh(options = {}) {
  identifies.length = 0;
  received.length = 0;
  return new ConciergeClient(url, { name: `standin_${Math.random().toString(16).slice(2, 8)}`, minReconnectDelay: 20, maxReconnectDelay: 100, ...options });
}

function lifecycle(client) {
  const events = [];
  client.on("*", (event) => {
    if (["connected", "disconnected", "closed"].includes(event.type)) events.push([event.type, event.code ?? event.reconnect]);
  });
  return events;
}

describe("connect", () => {
  test("connect() rejects with TimeoutError when no HELLO comes in time", async () => {
    script = [() => {}];
    const client = fresh({ connectTimeout: 200 });
    await assert.rejects(client.connect(), TimeoutError);
    assert.equal(client.status, "closed");
  });
});

describe("calls", () => {
  test("a call without a reply in time rejects with TimeoutError; a late reply does not disturb the next call", async () => {
    script = [hello()];
    const client = fresh();
    await client.connect();
    await assert.rejects(client.call({ type: "SILENT" }, { timeout: 50 }), TimeoutError);
    await assert.rejects(client.call({ type: "SLOW" }, { timeout: 50 }), TimeoutError);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the SLOW reply (seq 1) has come and gone
    assert.deepEqual(await client.call({ type: "NEXT" }), { type: "OK", seq: 2 });
    client.close();
  });
});

describe("close codes on an established socket", () => {
  for (const code of [4000, 4009, 4011, 1006]) {
    test(`${code} is retried: the client identifies again and re-subscribes`, async () => {
      script = [helloThenEnd(code, {}, "SELF_SUBSCRIBE")];
      const client = fresh();
      const events = lifecycle(client);
      await client.connect();
      await client.subscribe("weather");
      const back = await client.once("connected", { match: (event) => event.reconnect });
      assert.equal(back.resumed, false);
      assert.deepEqual(events.slice(0, 2), [["connected", false], ["disconnected", code]]);
      assert.equal(identifies.length, 2);
      assert.deepEqual(received.map((frame) => [frame.type, frame.service]), [["SELF_SUBSCRIBE", "weather"], ["SELF_SUBSCRIBE", "weather"]]);
      client.close();
    });
  }

  for (const code of [4002, 4003, 4005, 4006, 4007, 4008, 4010]) {
    test(`${code} is terminal: no second IDENTIFY`, async () => {
      script = [helloThenEnd(code)];
      const client = fresh();
      const events = lifecycle(client);
      const closed = client.once("closed");
      await client.connect();
      await closed;
      assert.deepEqual(events, [["connected", false], ["disconnected", code], ["closed", code]]);
      await new Promise((resolve) => setTimeout(resolve, 300)); // a retry would have come by now
      assert.equal(identifies.length, 1);
    });
  }
});

describe("restoring subscriptions", () => {
  test("a service missing at the reconnection is subscribed to once its creation is broadcast", async () => {
    script = [helloThenEnd(1006, {}, "SELF_SUBSCRIBE"), hello({ absent: "late" })];
    const client = fresh();
    const errors = [];
    client.on("error", (event) => errors.push(event.error));
    const back = client.once("connected", { match: (event) => event.reconnect });
    await client.connect();
    await client.subscribe("late");
    await back;
    const announced = await client.once("SERVICE_CREATE_RESULT");
    assert.equal(announced.service.name, "late");
    await client.fetchSelf(); // a round trip after the client's SELF_SUBSCRIBE went out
    assert.deepEqual(received.map((frame) => frame.type), ["SELF_SUBSCRIBE", "SELF_SUBSCRIBE", "SELF_SUBSCRIBE", "SELF_FETCH"]);
    assert.deepEqual(errors, []);
    client.close();
  });
});

describe("refusals while reconnecting", () => {
  test("a 4005 while reconnecting (the old connection not yet cleaned up) is retried", async () => {
    script = [helloThenEnd(1006), refuse(4005), refuse(4005)];
    const client = fresh();
    const back = client.once("connected", { match: (event) => event.reconnect });
    await client.connect();
    await back;
    assert.equal(identifies.length, 4);
    client.close();
  });

  test("with nameHeldRetryMs 0 a 4005 while reconnecting ends the client", async () => {
    script = [helloThenEnd(1006), refuse(4005)];
    const client = fresh({ nameHeldRetryMs: 0 });
    const closed = client.once("closed");
    await client.connect();
    assert.equal((await closed).code, 4005);
    assert.equal(client.status, "closed");
  });

  test("another terminal refusal while reconnecting (4006) ends the client at once", async () => {
    script = [helloThenEnd(1006), refuse(4006)];
    const client = fresh();
    const closed = client.once("closed");
    await client.connect();
    assert.equal((await closed).code, 4006);
    assert.equal(identifies.length, 2);
  });

  test("close() while reconnecting stops the attempts", async () => {
    script = [helloThenEnd(1006)];
    const client = fresh({ minReconnectDelay: 5000, maxReconnectDelay: 5000 });
    const reconnecting = client.once("reconnecting");
    await client.connect();
    await reconnecting;
    const closed = client.once("closed");
    client.close();
    assert.equal((await closed).code, 1000);
    assert.equal(identifies.length, 1);
  });
});

describe("resumable sessions (stand-in for PROTOCOL section 5)", () => {
  test("resume: true asks for a session, and the reconnection presents its token", async () => {
    const session = { token: "token-1", grace: 60 };
    script = [
      helloThenEnd(1006, { session }, "SELF_SUBSCRIBE"),
      hello({ resumed: true, missed: 2, recovered: true, session: { token: "token-2", grace: 60 } }),
    ];
    const client = fresh({ resume: true });
    await client.connect();
    await client.subscribe("kept");
    const back = await client.once("connected", { match: (event) => event.reconnect });
    assert.equal(identifies[0].resume, true);
    assert.equal(identifies[1].resume, "token-1");
    assert.deepEqual([back.resumed, back.missed, back.recovered], [true, 2, true]);
    client.close();
  });

  test("a resumed session is not restored again; a fresh one is (and the next token is used)", async () => {
    script = [
      helloThenEnd(1006, { session: { token: "a", grace: 60 } }, "SELF_SUBSCRIBE"),
      helloThenEnd(1006, { resumed: false, session: { token: "b", grace: 60 } }, "SELF_SUBSCRIBE"),
      hello({ resumed: true, missed: 0, recovered: false, session: { token: "c", grace: 60 } }),
    ];
    const client = fresh({ resume: true });
    await client.connect();
    await client.createService("mine");
    await client.subscribe("svc");
    const connected = [];
    client.on("connected", (event) => connected.push(event));
    await client.once("connected", { match: (event) => event.resumed });
    assert.deepEqual(identifies.map((identify) => identify.resume), [true, "a", "b"]);
    assert.deepEqual(connected.map((event) => [event.resumed, event.recovered]), [[false, undefined], [true, false]]);
    // Created and subscribed at first and after the fresh session; not after the resumed one.
    assert.deepEqual(received.map((frame) => frame.type), ["SERVICE_CREATE", "SELF_SUBSCRIBE", "SERVICE_CREATE", "SELF_SUBSCRIBE"]);
    client.close();
  });

  test("without resume, IDENTIFY carries no resume field", async () => {
    script = [hello()];
    const client = fresh();
    await client.connect();
    assert.equal("resume" in identifies[0], false);
    client.close();
  });
});
