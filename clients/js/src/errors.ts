/** Every error this package throws is a ConciergeError. */

import type { Frame } from "./types.js";

export class ConciergeError extends Error {
  override name = "ConciergeError";
}

/** The server answered a call with BAD, INVALID_*, ERROR_* or NOT_FOUND. */
export class ReplyError extends ConciergeError {
  override name = "ReplyError";
  /** The reply's type, e.g. "INVALID_NAME". */
  readonly type: string;
  /** The whole reply frame. */
  readonly reply: Frame;
  /** The type of the frame that was answered, e.g. "MESSAGE". */
  readonly requestType: string;

  constructor(requestType: string, reply: Frame) {
    const about = ["desc", "name", "uuid", "service", "path"].find((field) => typeof reply[field] === "string");
    const detail = about ? `: ${String(reply[about])}` : "";
    super(`${requestType} was answered ${reply.type}${detail}`);
    this.type = reply.type;
    this.reply = reply;
    this.requestType = requestType;
  }
}

/** No reply arrived within the call's timeout. */
export class TimeoutError extends ConciergeError {
  override name = "TimeoutError";
  constructor(what: string, readonly timeoutMs: number) {
    super(`${what}: no answer within ${timeoutMs} ms`);
  }
}

/** The socket closed (before HELLO, or while a call waited for its reply). */
export class ConnectionClosedError extends ConciergeError {
  override name = "ConnectionClosedError";
  constructor(readonly code: number, readonly reason: string) {
    super(`the connection closed with code ${code}${reason ? ` (${reason})` : ""}`);
  }
}

/** A call was made while the client has no open connection. */
export class NotConnectedError extends ConciergeError {
  override name = "NotConnectedError";
}

/** The file API refused a request: its status and the body's `error` and `detail`. */
export class HttpError extends ConciergeError {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly error: string,
    readonly detail: string,
    readonly method: string,
    readonly url: string,
  ) {
    super(`${method} ${url} failed with ${status} ${error}${detail ? `: ${detail}` : ""}`);
  }
}

/** A downloaded file's SHA-256 differs from the one the server announced. */
export class ChecksumError extends ConciergeError {
  override name = "ChecksumError";
  constructor(readonly expected: string, readonly actual: string) {
    super(`checksum mismatch: the server announced sha256 ${expected}, the bytes received hash to ${actual}`);
  }
}
