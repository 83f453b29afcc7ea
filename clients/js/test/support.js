// Shared by the tests: the server under test (CONCIERGE_URL), fresh clients, the harness's controls.
import { randomBytes } from "node:crypto";
import { ConciergeClient } from "../dist/index.js";

export const SERVER = process.env.CONCIERGE_URL;
if (!SERVER) {
  throw new Error("set CONCIERGE_URL to a running concierge (tests/test_js_client.py starts one and sets it)");
}

/** Restart and kick: served by tests/test_js_client.py; tests needing them skip without it. */
export const CONTROL = process.env.CONCIERGE_TEST_CONTROL;
export const NEEDS_CONTROL = CONTROL ? false : "needs CONCIERGE_TEST_CONTROL (run through tests/test_js_client.py)";

export function uniqueName(prefix = "js") {
  return `${prefix}_${randomBytes(4).toString("hex")}`;
}

const open = new Set();

/** A connected client with a fresh name (closed by closeAll). */
export async function connected(options = {}) {
  const client = new ConciergeClient(SERVER, { name: uniqueName(), minReconnectDelay: 100, maxReconnectDelay: 1000, ...options });
  open.add(client);
  await client.connect();
  return client;
}

export function track(client) {
  open.add(client);
  return client;
}

export function closeAll() {
  for (const client of open) client.close();
  open.clear();
}

/** Ask the harness to act on the server ("restart", "kick"). */
export async function control(action, body = {}) {
  const response = await fetch(`${CONTROL}/${action}`, { method: "POST", body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`control ${action} failed: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Progress callbacks recorder: every (loaded, total) pair. */
export function progressLog() {
  const calls = [];
  const record = (loaded, total) => calls.push([loaded, total]);
  return { calls, record };
}

export function assertMonotonic(assert, calls, total) {
  assert.ok(calls.length > 0, "no progress was reported");
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] >= calls[i - 1][0], `progress went back: ${calls[i - 1][0]} -> ${calls[i][0]}`);
  assert.equal(calls.at(-1)[0], total, "the last progress report is the whole size");
}
