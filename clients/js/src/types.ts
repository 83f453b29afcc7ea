/** Wire types of the concierge protocol (0.2 plus the server's additions). */

/** Any frame: a JSON object with a SCREAMING_SNAKE_CASE `type`. */
export interface Frame {
  type: string;
  seq?: number;
  [field: string]: unknown;
}

export interface ClientInfo {
  name: string;
  nickname: string | null;
  uuid: string;
  tags: string[];
}

export interface ServiceInfo {
  name: string;
  nickname: string | null;
  owner_uuid: string;
  subscribers: string[];
}

/** The session a resumable connection holds (IDENTIFY with `resume`). */
export interface SessionInfo {
  token: string;
  grace: number;
}

export interface Hello extends Frame {
  type: "HELLO";
  /** The client's secret key for the file API. */
  uuid: string;
  version: string;
  client?: ClientInfo;
  session?: SessionInfo;
  resumed?: boolean;
  missed?: number;
  recovered?: boolean;
}

export type Target =
  | { type: "NAME"; name: string }
  | { type: "UUID"; uuid: string }
  | { type: "SERVICE"; service: string }
  | { type: "SERVICE_CLIENT_UUID"; service: string; uuid: string }
  | { type: "ALL" };

/** A MESSAGE as received: `origin` is stamped by the server. */
export interface MessageFrame extends Frame {
  type: "MESSAGE";
  target: Target;
  data: unknown;
  origin: ClientInfo & { service?: ServiceInfo };
}

export interface ClientFetchResult {
  client: ClientInfo;
  subscriptions: string[];
}

/** One entry of a folder listing (websocket FILE_LIST or HTTP GET of a folder). */
export interface FileEntry {
  path: string;
  type?: string;
  permissions: number;
  size_bytes?: number;
  file_id?: number;
  content_type?: string;
  modified?: string;
  [field: string]: unknown;
}

/** What a PUT or POST of one file answers. */
export interface StoredFile {
  path: string;
  size: number;
  sha256: string | null;
  file_id: number;
  [field: string]: unknown;
}

/** Events the client itself emits (lower-case types, never sent by the server). */
export interface ConnectedEvent {
  type: "connected";
  hello: Hello;
  /** True after a reconnection, false for the first connection. */
  reconnect: boolean;
  /** True when the server resumed the previous session (PROTOCOL section 5). */
  resumed: boolean;
  /** For a resumed session: false if some frame meant for the client was lost. */
  recovered: boolean | undefined;
  /** For a resumed session: how many kept frames follow. */
  missed: number | undefined;
}

export interface DisconnectedEvent {
  type: "disconnected";
  code: number;
  reason: string;
  willReconnect: boolean;
}

export interface ReconnectingEvent {
  type: "reconnecting";
  attempt: number;
  /** Milliseconds waited before this attempt. */
  delay: number;
}

export interface ClosedEvent {
  type: "closed";
  code: number;
  reason: string;
}

export interface ErrorEvent {
  type: "error";
  error: unknown;
}

export type LifecycleEvent = ConnectedEvent | DisconnectedEvent | ReconnectingEvent | ClosedEvent | ErrorEvent;

/** Everything `on("*")` and `for await (... of client)` deliver. */
export type ClientEvent = Frame | LifecycleEvent;

/** Progress of a transfer: bytes so far, and the total when known. */
export type ProgressCallback = (loaded: number, total: number | undefined) => void;
