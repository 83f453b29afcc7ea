/** ConciergeClient: the websocket session (IDENTIFY, calls by seq, events, reconnection) and the file API. */

import { backoffDelay, CloseCode, isTerminal } from "./closecodes.js";
import { ConnectionClosedError, ConciergeError, NotConnectedError, ReplyError, TimeoutError } from "./errors.js";
import { Emitter, type EventQueue, type Handler } from "./events.js";
import { FileApi, type KeyHeader, type TusModule } from "./files.js";
import { frameText, webSocketClass, type SocketLike, type WebSocketConstructor } from "./transport.js";
import type {
  ClientEvent,
  ClientFetchResult,
  ClientInfo,
  FileEntry,
  Frame,
  Hello,
  ServiceInfo,
  Target,
} from "./types.js";
import { serverUrls, type ServerUrls } from "./urls.js";

export interface ClientOptions {
  /** Letters, digits and `_`, at most 64; unique among the live clients. */
  name: string;
  nickname?: string | null;
  tags?: string[];
  /** The server's shared secret, when it has one. */
  secret?: string | null;
  /** Ask for a session that survives a dropped connection (ignored by servers without it). */
  resume?: boolean;
  /** Protocol version sent in IDENTIFY (default "0.2.0"). */
  version?: string;
  /** Reconnect after a retryable close (default true). */
  reconnect?: boolean;
  /** Backoff bounds in milliseconds (defaults 500 and 20000). */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /**
   * How long a reconnection keeps retrying a 4005 (the name is still taken) in
   * milliseconds: after a crash the server needs a while to notice the old
   * connection is gone (default 30000; 0 makes 4005 terminal at once).
   */
  nameHeldRetryMs?: number;
  /** Default timeout of a call, in milliseconds (default 10000). */
  callTimeout?: number;
  /** Time allowed from opening the socket to HELLO, in milliseconds (default 10000). */
  connectTimeout?: number;
  /** Header for the key in the file API (default "authorization"). */
  keyHeader?: KeyHeader;
  /** A WebSocket class to use instead of the global one (or the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** tus-js-client's module, for resumable uploads where it cannot be imported by name. */
  tus?: TusModule;
}

export interface CallOptions {
  /** Milliseconds to wait for the reply (default: the client's callTimeout; Infinity: no limit). */
  timeout?: number;
}

type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

interface Pending {
  requestType: string;
  timeout: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve(frame: Frame): void;
  reject(error: Error): void;
  /** For streamed replies (FILE_LIST_RESULT): returns true when the last frame arrived. */
  collect?(frame: Frame): boolean;
}

const VERSION = "0.2.0";

/** True for the replies that refuse a request. */
export function isErrorReply(type: string): boolean {
  return type === "BAD" || type === "NOT_FOUND" || type.startsWith("INVALID_") || type.startsWith("ERROR_");
}

export class ConciergeClient implements AsyncIterable<ClientEvent> {
  readonly urls: ServerUrls;
  /** The file API (`/fs/`, `/tus/`) with this client's key. */
  readonly files: FileApi;
  private readonly options: Required<Pick<ClientOptions, "reconnect" | "minReconnectDelay" | "maxReconnectDelay" | "nameHeldRetryMs" | "callTimeout" | "connectTimeout">> & ClientOptions;
  private readonly emitter = new Emitter();
  private socket: SocketLike | null = null;
  private state: State = "idle";
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private hello: Hello | null = null;
  private sessionToken: string | null = null;
  private closing = false;
  private wakeReconnect: (() => void) | null = null;
  /** Services this client created and still owns: created again after a reconnection. */
  private readonly ownServices = new Map<string, string | null>();
  /** Services this client subscribed to: subscribed again after a reconnection. */
  private readonly subscriptions = new Set<string>();
  /**
   * Of those, the ones that did not exist at the reconnection (their owner had not come
   * back yet): subscribed as soon as a SERVICE_CREATE_RESULT broadcast announces them.
   */
  private readonly awaitedServices = new Set<string>();

  constructor(baseUrl: string, options: ClientOptions) {
    if (!options || typeof options.name !== "string") throw new TypeError("ConciergeClient needs options.name");
    this.urls = serverUrls(baseUrl);
    this.options = {
      reconnect: true,
      minReconnectDelay: 500,
      maxReconnectDelay: 20_000,
      nameHeldRetryMs: 30_000,
      callTimeout: 10_000,
      connectTimeout: 10_000,
      ...options,
    };
    this.files = new FileApi({
      urls: this.urls,
      keyHeader: options.keyHeader ?? "authorization",
      key: () => this.key,
      name: () => this.options.name,
    });
  }

  /** The client's name. */
  get name(): string {
    return this.options.name;
  }

  /** The secret key for the file API (HELLO's `uuid`), while connected. */
  get key(): string | null {
    return this.state === "open" && !this.closing ? (this.hello?.uuid ?? null) : null;
  }

  /** This client's public info (HELLO's `client`). */
  get client(): ClientInfo | null {
    return this.hello?.client ?? null;
  }

  get connected(): boolean {
    return this.state === "open";
  }

  /** "idle", "connecting", "open", "reconnecting" or "closed". */
  get status(): State {
    return this.state;
  }

  // -- Connection --------------------------------------------------------------------------

  /** Open the socket, IDENTIFY, and resolve with HELLO (rejects with ConnectionClosedError on a refusal). */
  async connect(): Promise<Hello> {
    if (this.state !== "idle") throw new ConciergeError(`connect() was already called (the client is ${this.state})`);
    this.state = "connecting";
    try {
      const hello = await this.open();
      if (this.closing) {
        this.socket?.close(CloseCode.NORMAL, "client closed");
        throw new ConnectionClosedError(CloseCode.NORMAL, "close() was called during connect()");
      }
      this.established(hello, false);
      return hello;
    } catch (error) {
      this.state = "closed";
      this.emitter.endAll();
      throw error;
    }
  }

  /** Close with code 1000 (ending the session: the folder goes); no reconnection. */
  close(code: number = CloseCode.NORMAL, reason = "client closed"): void {
    if (this.state === "closed") return;
    this.closing = true;
    const socket = this.socket;
    if (socket) {
      socket.close(code, reason);
      return; // the close event finishes the job
    }
    this.wakeReconnect?.();
    this.finish(code, reason);
  }

  private identify(): Frame {
    const frame: Frame = {
      type: "IDENTIFY",
      name: this.options.name,
      nickname: this.options.nickname ?? null,
      version: this.options.version ?? VERSION,
      secret: this.options.secret ?? null,
      tags: this.options.tags ?? [],
    };
    if (this.options.resume) frame.resume = this.sessionToken ?? true;
    return frame;
  }

  /** One attempt: socket, IDENTIFY, HELLO. */
  private async open(): Promise<Hello> {
    const WebSocketClass = await webSocketClass(this.options.WebSocket);
    return new Promise<Hello>((resolve, reject) => {
      const socket = new WebSocketClass(this.urls.ws, "ert-concierge");
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.onopen = socket.onmessage = socket.onclose = null;
        // Keep an error handler: closing a socket that is still connecting makes `ws` emit one.
        socket.onerror = () => {};
        reject(error);
      };
      const timer = setTimeout(() => {
        fail(new TimeoutError("IDENTIFY", this.options.connectTimeout));
        socket.close(CloseCode.NORMAL, "no HELLO in time");
      }, this.options.connectTimeout);
      socket.onopen = () => socket.send(JSON.stringify(this.identify()));
      socket.onerror = () => {
        /* the close event that follows says how it ended */
      };
      socket.onclose = (event) => fail(new ConnectionClosedError(event.code, event.reason));
      socket.onmessage = (event) => {
        const frame = parse(event.data);
        if (!frame || frame.type !== "HELLO") {
          fail(new ConciergeError(`the server answered IDENTIFY with ${frame?.type ?? "an unreadable frame"}`));
          socket.close(CloseCode.NORMAL, "unexpected answer to IDENTIFY");
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.attach(socket);
        resolve(frame as Hello);
      };
    });
  }

  /** The socket is identified: its frames now go to the dispatcher. */
  private attach(socket: SocketLike): void {
    this.socket = socket;
    this.seq = 0;
    socket.onmessage = (event) => this.dispatch(event.data);
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
    socket.onerror = () => {
      /* followed by a close event */
    };
  }

  private established(hello: Hello, reconnect: boolean): void {
    this.hello = hello;
    this.sessionToken = hello.session?.token ?? null;
    this.state = "open";
    this.emitter.emit({
      type: "connected",
      hello,
      reconnect,
      resumed: hello.resumed === true,
      recovered: hello.recovered,
      missed: hello.missed,
    });
  }

  private closed(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.failPending(new ConnectionClosedError(code, reason));
    if (this.closing) {
      this.finish(code, reason);
      return;
    }
    const retry = this.options.reconnect && !isTerminal(code);
    this.emitter.emit({ type: "disconnected", code, reason, willReconnect: retry });
    if (retry) {
      void this.reconnect();
    } else {
      this.finish(code, reason);
    }
  }

  private finish(code: number, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.failPending(new ConnectionClosedError(code, reason));
    this.emitter.emit({ type: "closed", code, reason });
    this.emitter.endAll();
  }

  private async reconnect(): Promise<void> {
    this.state = "reconnecting";
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const delay = backoffDelay(attempt, this.options.minReconnectDelay, this.options.maxReconnectDelay);
      this.emitter.emit({ type: "reconnecting", attempt: attempt + 1, delay });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeReconnect = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeReconnect = null;
      if (this.closing) return this.finish(CloseCode.NORMAL, "client closed");
      let hello: Hello;
      try {
        hello = await this.open();
      } catch (error) {
        if (this.closing) return this.finish(CloseCode.NORMAL, "client closed");
        if (error instanceof ConnectionClosedError && isTerminal(error.code)) {
          const ownGhost = error.code === CloseCode.DUPLICATE_AUTH && Date.now() - started < this.options.nameHeldRetryMs;
          if (!ownGhost) return this.finish(error.code, error.reason);
        }
        continue;
      }
      if (this.closing) {
        this.socket?.close(CloseCode.NORMAL, "client closed");
        return;
      }
      this.state = "open";
      this.hello = hello;
      if (hello.resumed !== true) await this.restore();
      if (this.state !== "open") return;
      this.established(hello, true);
      return;
    }
  }

  /** A fresh session after a reconnection: create the own services and subscribe again. */
  private async restore(): Promise<void> {
    for (const [service, nickname] of [...this.ownServices]) {
      try {
        const result = await this.call({ type: "SERVICE_CREATE", service, ...(nickname ? { nickname } : {}) });
        if (result.successful === false) {
          this.ownServices.delete(service);
          const desc = `service ${service} could not be created again after the reconnection (its name is taken)`;
          this.emitter.emit({ type: "error", error: new ReplyError("SERVICE_CREATE", { ...result, desc }) });
        }
      } catch (error) {
        if (!(error instanceof ConnectionClosedError)) this.emitter.emit({ type: "error", error });
      }
    }
    for (const service of [...this.subscriptions]) await this.resubscribe(service);
  }

  /** Subscribe again to a service this client had subscribed to. */
  private async resubscribe(service: string): Promise<void> {
    try {
      await this.call({ type: "SELF_SUBSCRIBE", service });
      this.awaitedServices.delete(service);
    } catch (error) {
      if (error instanceof ReplyError && error.type === "INVALID_SERVICE") {
        this.awaitedServices.add(service); // its owner may not be back yet
      } else if (!(error instanceof ConnectionClosedError)) {
        this.subscriptions.delete(service);
        this.awaitedServices.delete(service);
        this.emitter.emit({ type: "error", error });
      }
    }
  }

  // -- Frames ------------------------------------------------------------------------------

  private dispatch(data: unknown): void {
    const frame = parse(data);
    if (!frame) return; // binary (pw_rpc) frames are not this client's business
    if (typeof frame.seq === "number") {
      const pending = this.pending.get(frame.seq);
      if (!pending) return; // the answer to a call that already timed out
      if (pending.collect && !isErrorReply(frame.type)) {
        if (!pending.collect(frame)) {
          clearTimeout(pending.timer);
          pending.timer = after(pending.timeout, () => this.timeOut(frame.seq as number));
          return;
        }
      }
      this.pending.delete(frame.seq);
      clearTimeout(pending.timer);
      if (isErrorReply(frame.type)) pending.reject(new ReplyError(pending.requestType, frame));
      else pending.resolve(frame);
      return;
    }
    if (frame.type === "SERVICE_CREATE_RESULT") this.serviceAppeared(frame);
    this.emitter.emit(frame);
  }

  private serviceAppeared(frame: Frame): void {
    const name = (frame.service as ServiceInfo | undefined)?.name;
    if (name !== undefined && this.awaitedServices.has(name) && this.state === "open") void this.resubscribe(name);
  }

  private timeOut(seq: number): void {
    const pending = this.pending.get(seq);
    if (!pending) return;
    this.pending.delete(seq);
    pending.reject(new TimeoutError(pending.requestType, pending.timeout));
  }

  private failPending(error: Error): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
  }

  /**
   * Send a payload and resolve with the reply that carries its `seq`. Rejects with
   * ReplyError (BAD, INVALID_*, ERROR_*, NOT_FOUND), TimeoutError, ConnectionClosedError,
   * or NotConnectedError.
   */
  call<T extends Frame = Frame>(payload: Frame, options: CallOptions = {}): Promise<T> {
    return this.send(payload, options) as Promise<T>;
  }

  private send(payload: Frame, options: CallOptions, collect?: (frame: Frame) => boolean): Promise<Frame> {
    const socket = this.socket;
    if (!socket || this.closing || (this.state !== "open" && this.state !== "reconnecting")) {
      return Promise.reject(new NotConnectedError(`cannot send ${payload.type}: the client is ${this.state}`));
    }
    let seq: number;
    if (payload.type === "SELF_SET_SEQ" && typeof payload.seq === "number") {
      seq = payload.seq;
      this.seq = seq + 1;
    } else {
      seq = this.seq++;
    }
    const timeout = options.timeout ?? this.options.callTimeout;
    return new Promise<Frame>((resolve, reject) => {
      const timer = after(timeout, () => this.timeOut(seq));
      this.pending.set(seq, { requestType: payload.type, timeout, timer, resolve, reject, ...(collect ? { collect } : {}) });
      try {
        socket.send(JSON.stringify(payload));
      } catch (error) {
        this.pending.delete(seq);
        clearTimeout(timer);
        reject(error instanceof Error ? error : new ConciergeError(String(error)));
      }
    });
  }

  // -- Events ------------------------------------------------------------------------------

  /**
   * Call `handler` for every event of `type`: a server frame type ("MESSAGE",
   * "CLIENT_JOINED", ...), a client event ("connected", "disconnected", "reconnecting",
   * "closed", "error"), or "*" for all. Returns a function that removes the handler.
   */
  on<E extends ClientEvent = ClientEvent>(type: string, handler: Handler<E>): () => void {
    return this.emitter.on(type, handler as Handler);
  }

  off<E extends ClientEvent = ClientEvent>(type: string, handler: Handler<E>): void {
    this.emitter.off(type, handler as Handler);
  }

  /** The next event of `type` (optionally one that `match` accepts); rejects after `timeout` ms (default callTimeout; Infinity: no limit). */
  once<E extends ClientEvent = ClientEvent>(type: string, options: { timeout?: number; match?: (event: E) => boolean } = {}): Promise<E> {
    const timeout = options.timeout ?? this.options.callTimeout;
    return new Promise<E>((resolve, reject) => {
      const timer = after(timeout, () => {
        off();
        reject(new TimeoutError(`waiting for ${type}`, timeout));
      });
      const off = this.emitter.on(type, (event) => {
        if (options.match && !options.match(event as E)) return;
        off();
        clearTimeout(timer);
        resolve(event as E);
      });
    });
  }

  /** Events from now on, for `for await`; the loop ends when the client closes for good. */
  events(): EventQueue {
    const queue = this.emitter.queue();
    if (this.state === "closed") queue.end();
    return queue;
  }

  [Symbol.asyncIterator](): AsyncIterator<ClientEvent> {
    return this.events();
  }

  // -- Payloads ----------------------------------------------------------------------------

  /** MESSAGE to any target; resolves with OK. */
  message(target: Target, data: unknown, options?: CallOptions): Promise<Frame> {
    return this.call({ type: "MESSAGE", target, data }, options);
  }

  /** MESSAGE to one client: by name (a string) or by public id (`{ uuid }`). */
  sendTo(to: string | { uuid: string }, data: unknown, options?: CallOptions): Promise<Frame> {
    const target: Target = typeof to === "string" ? { type: "NAME", name: to } : { type: "UUID", uuid: to.uuid };
    return this.message(target, data, options);
  }

  /** MESSAGE to every client (the sender included). */
  broadcast(data: unknown, options?: CallOptions): Promise<Frame> {
    return this.message({ type: "ALL" }, data, options);
  }

  /** MESSAGE to a service: from its owner to every subscriber, from a subscriber to the owner. */
  sendToService(service: string, data: unknown, options?: CallOptions): Promise<Frame> {
    return this.message({ type: "SERVICE", service }, data, options);
  }

  /** MESSAGE from a service's owner to one client of it (by public id). */
  sendToServiceClient(service: string, uuid: string, data: unknown, options?: CallOptions): Promise<Frame> {
    return this.message({ type: "SERVICE_CLIENT_UUID", service, uuid }, data, options);
  }

  /** SELF_SUBSCRIBE; remembered, and repeated after a reconnection. */
  async subscribe(service: string, options?: CallOptions): Promise<ServiceInfo | undefined> {
    const result = await this.call({ type: "SELF_SUBSCRIBE", service }, options);
    if (result.successful !== false) this.subscriptions.add(service);
    return result.service as ServiceInfo | undefined;
  }

  async unsubscribe(service: string, options?: CallOptions): Promise<ServiceInfo | undefined> {
    this.subscriptions.delete(service);
    this.awaitedServices.delete(service);
    const result = await this.call({ type: "SELF_UNSUBSCRIBE", service }, options);
    return result.service as ServiceInfo | undefined;
  }

  /** SELF_FETCH: this client's info and subscriptions. */
  async fetchSelf(options?: CallOptions): Promise<ClientFetchResult> {
    const result = await this.call({ type: "SELF_FETCH" }, options);
    return { client: result.client as ClientInfo, subscriptions: result.subscriptions as string[] };
  }

  /** SELF_SET_SEQ: the reply carries `seq`, and the next frame is seq + 1. */
  async setSeq(seq: number, options?: CallOptions): Promise<void> {
    await this.call({ type: "SELF_SET_SEQ", seq }, options);
  }

  /** SERVICE_CREATE; throws ReplyError when the name is taken. Created again after a reconnection. */
  async createService(service: string, nickname?: string | null, options?: CallOptions): Promise<ServiceInfo> {
    const payload: Frame = { type: "SERVICE_CREATE", service };
    if (nickname != null) payload.nickname = nickname;
    const result = await this.call(payload, options);
    if (result.successful === false) throw new ReplyError("SERVICE_CREATE", { ...result, desc: `service ${service} was not created` });
    this.ownServices.set(service, nickname ?? null);
    return result.service as ServiceInfo;
  }

  async deleteService(service: string, options?: CallOptions): Promise<ServiceInfo> {
    const result = await this.call({ type: "SERVICE_DELETE", service }, options);
    this.ownServices.delete(service);
    return result.service as ServiceInfo;
  }

  async fetchService(service: string, options?: CallOptions): Promise<ServiceInfo> {
    return (await this.call({ type: "SERVICE_FETCH", service }, options)).service as ServiceInfo;
  }

  async fetchServices(options?: CallOptions): Promise<ServiceInfo[]> {
    return (await this.call({ type: "SERVICE_FETCH_ALL" }, options)).services as ServiceInfo[];
  }

  /** CLIENT_FETCH by public id. */
  async fetchClient(uuid: string, options?: CallOptions): Promise<ClientFetchResult> {
    const result = await this.call({ type: "CLIENT_FETCH", uuid }, options);
    return { client: result.client as ClientInfo, subscriptions: result.subscriptions as string[] };
  }

  async fetchClients(options?: CallOptions): Promise<ClientInfo[]> {
    return (await this.call({ type: "CLIENT_FETCH_ALL" }, options)).clients as ClientInfo[];
  }

  /** FILE_LIST over the websocket (pw_file List): every entry of every FILE_LIST_RESULT frame. */
  async listFiles(path = "", options?: CallOptions): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    await this.send({ type: "FILE_LIST", path }, options ?? {}, (frame) => {
      if (Array.isArray(frame.entries)) entries.push(...(frame.entries as FileEntry[]));
      return frame.done !== false;
    });
    return entries;
  }

  /** FILE_DELETE over the websocket (pw_file Delete). */
  async deleteFile(path: string, options?: CallOptions): Promise<void> {
    await this.call({ type: "FILE_DELETE", path }, options);
  }
}

/** A timer, or none for an infinite timeout. */
function after(ms: number, run: () => void): ReturnType<typeof setTimeout> | undefined {
  return Number.isFinite(ms) ? setTimeout(run, ms) : undefined;
}

function parse(data: unknown): Frame | null {
  const text = frameText(data);
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value) && typeof (value as Frame).type === "string") {
      return value as Frame;
    }
  } catch {
    // not JSON: ignored like a binary frame
  }
  return null;
}
