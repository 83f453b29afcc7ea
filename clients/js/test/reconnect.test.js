// Reconnection: the close-code table, backoff, and what a reconnected client restores.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ConciergeClient, TERMINAL_CLOSE_CODES, backoffDelay, isTerminal } from "../dist/index.js";
import { NEEDS_CONTROL, SERVER, closeAll, connected, control, track, uniqueName } from "./support.js";

after(closeAll);

describe("backoff and the close-code table", () => {
  test("full jitter: each wait is between 0 and min(20 s, 0.5 s * 2^attempt)", () => {
    assert.equal(backoffDelay(0, 500, 20_000, () => 1), 500);
    assert.equal(backoffDelay(3, 500, 20_000, () => 1), 4000);
    assert.equal(backoffDelay(10, 500, 20_000, () => 1), 20_000);
    assert.equal(backoffDelay(1000, 500, 20_000, () => 1), 20_000);
    assert.equal(backoffDelay(5, 500, 20_000, () => 0), 0);
    for (let attempt = 0; attempt < 12; attempt++) {
      const delay = backoffDelay(attempt, 500, 20_000);
      assert.ok(delay >= 0 && delay <= Math.min(20_000, 500 * 2 ** attempt));
    }
  });

  test("terminal codes are 4002, 4003, 4005, 4006, 4007, 4008, 4010; 4000, 4009, 4011 and 1006 are retried", () => {
    assert.deepEqual([...TERMINAL_CLOSE_CODES].sort(), [4002, 4003, 4005, 4006, 4007, 4008, 4010]);
    for (const code of [4000, 4009, 4011, 1006, 1001]) assert.equal(isTerminal(code), false);
  });
});

function record(client) {
  const events = [];
  client.on("*", (event) => {
    if (["connected", "disconnected", "reconnecting", "closed"].includes(event.type)) events.push(event);
  });
  return events;
}

describe("against the server", { skip: NEEDS_CONTROL }, () => {
  test("an operator's kick (4010) is terminal: closed, no reconnection", async () => {
    const a = await connected();
    const events = record(a);
    const closed = a.once("closed", { timeout: 15_000 });
    await control("kick", { client: a.client.uuid });
    assert.equal((await closed).code, 4010);
    assert.deepEqual(
      events.map((event) => [event.type, event.code, event.willReconnect]),
      [["disconnected", 4010, false], ["closed", 4010, undefined]],
    );
    assert.equal(a.status, "closed");
  });

  test("after a server restart the clients reconnect, identify again, re-create their services and re-subscribe", async () => {
    // A slow restart must not use up the time allowed for the old names to be swept.
    const patient = { nameHeldRetryMs: 120_000 };
    const owner = await connected(patient);
    const member = await connected(patient);
    const service = uniqueName("svc");
    await owner.createService(service, "restored");
    await member.subscribe(service);
    const oldKey = owner.key;
    const events = record(member);
    const back = (client) => client.once("connected", { timeout: 120_000 });
    const [ownerBack, memberBack] = [back(owner), back(member)];
    await control("restart");
    const [ownerHello, memberHello] = await Promise.all([ownerBack, memberBack]);

    assert.equal(memberHello.reconnect, true);
    assert.equal(memberHello.resumed, false);
    assert.equal(ownerHello.resumed, false);
    assert.notEqual(owner.key, oldKey, "a fresh session has a fresh key");
    const types = events.map((event) => event.type);
    assert.equal(types[0], "disconnected");
    assert.equal(events[0].willReconnect, true);
    assert.ok(types.includes("reconnecting"));
    assert.equal(types.at(-1), "connected");
    for (const event of events.filter((e) => e.type === "reconnecting")) {
      assert.ok(event.delay >= 0 && event.delay <= 1000, `delay ${event.delay} within the configured bounds`);
    }

    // The member may have come back before the owner re-created the service: it then
    // subscribes when the service's creation is broadcast, a moment after its own HELLO.
    const info = await until(async () => {
      const current = await member.fetchService(service);
      return current.subscribers.length ? current : null;
    });
    assert.equal(info.owner_uuid, owner.client.uuid);
    assert.deepEqual(info.subscribers, [member.client.uuid]);
    const message = member.once("MESSAGE");
    await owner.sendToService(service, "after the restart");
    assert.equal((await message).data, "after the restart");
    await owner.files.upload("again.txt", "files work with the new key");
    assert.equal(await (await member.files.download("again.txt", { client: owner.name })).text(), "files work with the new key");
  });

  test("with reconnect: false a dropped connection ends the client", async () => {
    const a = track(new ConciergeClient(SERVER, { name: uniqueName(), reconnect: false }));
    await a.connect();
    const closed = a.once("closed", { timeout: 60_000 });
    const disconnected = a.once("disconnected", { timeout: 60_000 });
    await control("restart");
    const event = await disconnected;
    assert.equal(event.willReconnect, false);
    assert.notEqual((await closed).code, 1000);
    assert.equal(a.status, "closed");
  });
});

async function until(check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
