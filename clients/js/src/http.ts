/** HTTP plumbing for the file API: bodies, progress counting, refusals as HttpError. */

import { HttpError } from "./errors.js";
import type { ProgressCallback } from "./types.js";

/** What an upload accepts as the file's bytes. */
export type UploadBody = Blob | ArrayBuffer | ArrayBufferView | string | ReadableStream<Uint8Array>;

const SLICE = 256 * 1024;

function isBlob(body: unknown): body is Blob {
  return typeof Blob !== "undefined" && body instanceof Blob;
}

/** The byte length of a body, when it is known without reading it. */
export function bodySize(body: UploadBody): number | undefined {
  if (typeof body === "string") return new TextEncoder().encode(body).byteLength;
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  if (isBlob(body)) return body.size;
  return undefined;
}

/** The body as a stream of byte chunks (buffers are cut in slices so progress moves). */
export function bodyStream(body: UploadBody): ReadableStream<Uint8Array> {
  if (body instanceof ReadableStream) return body;
  if (isBlob(body)) return body.stream();
  const bytes =
    typeof body === "string"
      ? new TextEncoder().encode(body)
      : body instanceof ArrayBuffer
        ? new Uint8Array(body)
        : new Uint8Array((body as ArrayBufferView).buffer, (body as ArrayBufferView).byteOffset, (body as ArrayBufferView).byteLength);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + SLICE));
      offset += SLICE;
    },
  });
}

/** A stream passing `source` through, reporting the bytes that went by. */
export function counted(
  source: ReadableStream<Uint8Array>,
  total: number | undefined,
  onProgress: ProgressCallback | undefined,
): ReadableStream<Uint8Array> {
  if (!onProgress) return source;
  let loaded = 0;
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        if (loaded === 0) onProgress(0, total); // an empty body still reports its end
        controller.close();
        return;
      }
      loaded += value.byteLength;
      controller.enqueue(value);
      onProgress(loaded, total);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** True where XMLHttpRequest exists (browsers): its upload events give real progress. */
export function hasXhr(): boolean {
  return typeof (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest === "function";
}

export interface XhrResult {
  status: number;
  text: string;
}

/** Send with XMLHttpRequest, reporting upload progress. */
export function xhrSend(
  method: string,
  url: string,
  headers: Record<string, string>,
  body: Blob | ArrayBuffer | ArrayBufferView | string | FormData,
  onProgress: ProgressCallback | undefined,
): Promise<XhrResult> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onProgress) {
      xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : undefined);
    }
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => reject(new TypeError(`${method} ${url}: network error (refused, unreachable, or blocked by CORS)`));
    xhr.onabort = () => reject(new TypeError(`${method} ${url}: aborted`));
    xhr.send(body as XMLHttpRequestBodyInit);
  });
}

/** The file API's one-line JSON refusal as an HttpError. */
export function refusal(method: string, url: string, status: number, text: string): HttpError {
  let error = "http_error";
  let detail = text.slice(0, 200);
  try {
    const body = JSON.parse(text) as { error?: unknown; detail?: unknown };
    if (typeof body.error === "string") error = body.error;
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not the file API's JSON (a proxy's page, say): keep the start of the text
  }
  return new HttpError(status, error, detail, method, url);
}

/** Throw the refusal of a fetch response that is not a success. */
export async function check(method: string, url: string, response: Response): Promise<Response> {
  if (response.ok) return response;
  throw refusal(method, url, response.status, await response.text());
}

/** Hex of a SHA-256 (Web Crypto: browsers and Node). */
export async function sha256Hex(data: ArrayBuffer | Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as BufferSource);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The SHA-256 an ETag announces (the server's ETag is the file's hex SHA-256), if it does. */
export function etagSha256(etag: string | null): string | null {
  const value = etag?.replace(/^W\//, "").replace(/"/g, "") ?? "";
  return /^[0-9a-f]{64}$/.test(value) ? value : null;
}
