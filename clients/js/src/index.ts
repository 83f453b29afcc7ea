/** concierge-client: the concierge's websocket protocol and file API for browsers and Node. */

export { ConciergeClient, isErrorReply, type ClientOptions, type CallOptions } from "./client.js";
export { CloseCode, TERMINAL_CLOSE_CODES, isTerminal, backoffDelay } from "./closecodes.js";
export {
  ConciergeError,
  ReplyError,
  TimeoutError,
  ConnectionClosedError,
  NotConnectedError,
  HttpError,
  ChecksumError,
} from "./errors.js";
export {
  FileApi,
  type KeyHeader,
  type UploadOptions,
  type DownloadOptions,
  type ListOptions,
  type Listing,
  type ResumableOptions,
  type TusModule,
  type TusUpload,
} from "./files.js";
export type { UploadBody } from "./http.js";
export { webSocketClass, type WebSocketConstructor, type SocketLike } from "./transport.js";
export { serverUrls, type ServerUrls } from "./urls.js";
export type * from "./types.js";
