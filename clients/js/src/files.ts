/** The file API over HTTP (`/fs/`) and resumable uploads (`/tus/`), with progress. */

import { ChecksumError, NotConnectedError } from "./errors.js";
import {
  bodySize,
  bodyStream,
  check,
  counted,
  etagSha256,
  hasXhr,
  refusal,
  sha256Hex,
  xhrSend,
  type UploadBody,
} from "./http.js";
import type { FileEntry, ProgressCallback, StoredFile } from "./types.js";
import { encodePath, type ServerUrls } from "./urls.js";

export type { UploadBody };

/** Which header carries the key: `Authorization: <key>` (the default) or `x-fs-key: <key>`. */
export type KeyHeader = "authorization" | "x-fs-key";

/** What the file API needs from the connected client. */
export interface FileCredentials {
  urls: ServerUrls;
  keyHeader: KeyHeader;
  /** The HELLO key, or null while not connected. */
  key(): string | null;
  /** The connected client's own name (its folder). */
  name(): string;
}

export interface UploadOptions {
  onProgress?: ProgressCallback;
  /** Sent as the body's type (the concierge itself types a PUT file by its name). */
  contentType?: string;
  /** Hex SHA-256 of the body: the server refuses the upload (400) if the bytes differ. */
  sha256?: string;
  signal?: AbortSignal;
}

export interface DownloadOptions {
  /** Whose folder (default: this client's). */
  client?: string;
  onProgress?: ProgressCallback;
  /** Compare the bytes' SHA-256 with the server's ETag (default true). */
  verify?: boolean;
  signal?: AbortSignal;
}

export interface ListOptions {
  /** Whose folder (default: this client's); "" lists the root (every live client's folder). */
  client?: string;
}

export interface Listing {
  path: string;
  entries: FileEntry[];
}

/** Minimal shape of tus-js-client's module (an optional peer dependency). */
export interface TusModule {
  Upload: new (file: unknown, options: Record<string, unknown>) => TusUpload;
}

export interface TusUpload {
  url: string | null;
  start(): void;
  abort(shouldTerminate?: boolean): Promise<void>;
  findPreviousUploads(): Promise<unknown[]>;
  resumeFromPreviousUpload(previous: unknown): void;
}

export interface ResumableOptions {
  onProgress?: ProgressCallback;
  /** Bytes per PATCH (default 8 MiB; the server's limit is its Tus-Max-Chunk-Size). */
  chunkSize?: number;
  contentType?: string;
  /** Continue an earlier upload of the same file found in tus-js-client's URL storage (default true). */
  resume?: boolean;
  /** tus-js-client's module, when `import("tus-js-client")` cannot find it (a page without a bundler). */
  tus?: TusModule;
  /** Further tus-js-client options (retryDelays, urlStorage, fingerprint, ...). */
  tusOptions?: Record<string, unknown>;
  /** Called with the running tus Upload (to abort it, say). */
  onStart?: (upload: TusUpload) => void;
}

/** Node's fs and crypto, loaded only where they exist. */
interface NodeFs {
  openAsBlob(path: string): Promise<Blob>;
  promises: { open(path: string, flags: string): Promise<{ write(data: Uint8Array): Promise<unknown>; close(): Promise<void> }> };
}
interface NodeCrypto {
  createHash(algorithm: string): { update(data: Uint8Array): void; digest(encoding: "hex"): string };
}

async function nodeModule<T>(name: string): Promise<T> {
  const specifier = `node:${name}`;
  return (await import(/* @vite-ignore */ specifier)) as T;
}

export class FileApi {
  constructor(private readonly credentials: FileCredentials) {}

  /** The URL of a file: `<base>/fs/<client>/<path>` (client: this one by default). */
  url(path: string, client?: string): string {
    return `${this.credentials.urls.fs}${encodeURIComponent(client ?? this.credentials.name())}/${encodePath(path)}`;
  }

  /** The headers carrying the key. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const key = this.credentials.key();
    if (!key) throw new NotConnectedError("the file API needs the key of a connected client: call connect() first");
    return { ...extra, [this.credentials.keyHeader === "x-fs-key" ? "x-fs-key" : "Authorization"]: key };
  }

  /**
   * PUT a file into this client's folder. Progress: XMLHttpRequest's upload events in
   * browsers, the bytes handed to the request stream in Node.
   */
  async upload(path: string, body: UploadBody, options: UploadOptions = {}): Promise<StoredFile> {
    const url = this.url(path);
    const headers = this.headers();
    if (options.contentType) headers["Content-Type"] = options.contentType;
    if (options.sha256) headers["X-Checksum-SHA256"] = options.sha256;
    const total = bodySize(body);
    if (hasXhr() && !(body instanceof ReadableStream)) {
      const result = await xhrSend("PUT", url, headers, body, options.onProgress);
      if (result.status < 200 || result.status >= 300) throw refusal("PUT", url, result.status, result.text);
      return JSON.parse(result.text) as StoredFile;
    }
    const init: RequestInit & { duplex: "half" } = {
      method: "PUT",
      headers,
      body: counted(bodyStream(body), total, options.onProgress),
      duplex: "half",
      signal: options.signal ?? null,
    };
    const response = await check("PUT", url, await fetch(url, init));
    return (await response.json()) as StoredFile;
  }

  /** Node: PUT a local file, streamed from disk. */
  async uploadFile(localPath: string, path: string, options: UploadOptions = {}): Promise<StoredFile> {
    const fs = await nodeModule<NodeFs>("fs");
    const blob = await fs.openAsBlob(localPath);
    const init: RequestInit & { duplex: "half" } = {
      method: "PUT",
      headers: { ...this.headers(), ...(options.contentType ? { "Content-Type": options.contentType } : {}) },
      body: counted(blob.stream(), blob.size, options.onProgress),
      duplex: "half",
      signal: options.signal ?? null,
    };
    const url = this.url(path);
    const response = await check("PUT", url, await fetch(url, init));
    return (await response.json()) as StoredFile;
  }

  /** POST one file as a multipart form to `path` (the browser front-end's way). */
  async postFile(path: string, body: Blob | ArrayBuffer | ArrayBufferView | string, options: UploadOptions = {}): Promise<StoredFile> {
    const form = new FormData();
    form.append("file", asBlob(body, options.contentType), path.split("/").pop() ?? "file");
    return (await this.postForm(this.url(path), form, options)) as StoredFile;
  }

  /** POST several files as one multipart form; each is saved under its file name in the folder's top level. */
  async postFiles(
    files: Array<{ name: string; body: Blob | ArrayBuffer | ArrayBufferView | string; contentType?: string }>,
    options: Omit<UploadOptions, "contentType" | "sha256"> = {},
  ): Promise<StoredFile[]> {
    const form = new FormData();
    for (const file of files) form.append("file", asBlob(file.body, file.contentType), file.name);
    const url = `${this.credentials.urls.fs}${encodeURIComponent(this.credentials.name())}/`;
    const answer = (await this.postForm(url, form, options)) as { files: StoredFile[] };
    return answer.files;
  }

  private async postForm(url: string, form: FormData, options: UploadOptions): Promise<unknown> {
    const headers = this.headers();
    if (hasXhr()) {
      const result = await xhrSend("POST", url, headers, form, options.onProgress);
      if (result.status < 200 || result.status >= 300) throw refusal("POST", url, result.status, result.text);
      return JSON.parse(result.text);
    }
    // Encode the form once (a Response does it), then send the encoded bytes through a counter.
    const encoded = new Response(form);
    const type = encoded.headers.get("content-type");
    if (type) headers["Content-Type"] = type;
    const bytes = await encoded.blob();
    // A streamed body goes out chunked; the server's multipart parser needs the length.
    headers["Content-Length"] = String(bytes.size);
    const init: RequestInit & { duplex: "half" } = {
      method: "POST",
      headers,
      body: counted(bytes.stream(), bytes.size, options.onProgress),
      duplex: "half",
      signal: options.signal ?? null,
    };
    const response = await check("POST", url, await fetch(url, init));
    return response.json();
  }

  /** Start a GET: the response and a counted stream of its body. */
  async fetchFile(path: string, options: DownloadOptions = {}): Promise<{ response: Response; body: ReadableStream<Uint8Array>; total: number | undefined }> {
    const url = this.url(path, options.client);
    const response = await check("GET", url, await fetch(url, { headers: this.headers(), signal: options.signal ?? null }));
    const length = response.headers.get("content-length");
    const total = length === null ? undefined : Number(length);
    if (!response.body) throw refusal("GET", url, response.status, "the answer has no body");
    return { response, body: counted(response.body, total, options.onProgress), total };
  }

  /** GET a file into a Blob (its `type` is the file's content type), with progress; checks its SHA-256. */
  async download(path: string, options: DownloadOptions = {}): Promise<Blob> {
    const { response, body } = await this.fetchFile(path, options);
    const chunks: Uint8Array[] = [];
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const blob = new Blob(chunks as BlobPart[], { type: response.headers.get("content-type") ?? "" });
    const expected = etagSha256(response.headers.get("etag"));
    if (expected && options.verify !== false) {
      const actual = await sha256Hex(await blob.arrayBuffer());
      if (actual !== expected) throw new ChecksumError(expected, actual);
    }
    return blob;
  }

  /** Node: GET a file straight to disk, with progress; checks its SHA-256 as it streams. */
  async downloadToFile(path: string, localPath: string, options: DownloadOptions = {}): Promise<{ size: number; sha256: string }> {
    const [fs, crypto] = await Promise.all([nodeModule<NodeFs>("fs"), nodeModule<NodeCrypto>("crypto")]);
    const { response, body } = await this.fetchFile(path, options);
    const hash = crypto.createHash("sha256");
    const file = await fs.promises.open(localPath, "w");
    let size = 0;
    try {
      const reader = body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        size += value.byteLength;
        await file.write(value);
      }
    } finally {
      await file.close();
    }
    const sha256 = hash.digest("hex");
    const expected = etagSha256(response.headers.get("etag"));
    if (expected && options.verify !== false && expected !== sha256) throw new ChecksumError(expected, sha256);
    return { size, sha256 };
  }

  /** List a folder over HTTP: `list()` is this client's folder, `list("sub", { client })` another's sub-folder. */
  async list(folder = "", options: ListOptions = {}): Promise<Listing> {
    const client = options.client ?? this.credentials.name();
    const parts = [client, folder].filter((part) => part !== "").map(encodePath);
    const url = this.credentials.urls.fs + parts.map((part) => `${part}/`).join("");
    const response = await check("GET", url, await fetch(url, { headers: this.headers() }));
    return (await response.json()) as Listing;
  }

  /** DELETE a file of this client's folder. */
  async delete(path: string): Promise<void> {
    const url = this.url(path);
    await check("DELETE", url, await fetch(url, { method: "DELETE", headers: this.headers() }));
  }

  /**
   * Upload through tus (resumable): tus-js-client does the chunks and retries, and
   * with `resume` continues an earlier interrupted upload of the same file.
   * Resolves with the upload's URL once the file is stored.
   */
  async uploadResumable(path: string, file: UploadBody | unknown, options: ResumableOptions = {}): Promise<string> {
    const tus = options.tus ?? (await importTus());
    const endpoint = `${this.credentials.urls.tus}${encodeURIComponent(this.credentials.name())}/`;
    const metadata: Record<string, string> = { filename: path };
    if (options.contentType) metadata.filetype = options.contentType;
    const headers = this.headers();
    const source = await tusSource(file);
    return new Promise<string>((resolve, reject) => {
      const upload: TusUpload = new tus.Upload(source.file, {
        ...(source.size !== undefined ? { uploadSize: source.size } : {}),
        endpoint,
        headers,
        chunkSize: options.chunkSize ?? 8 * 1024 * 1024,
        metadata,
        retryDelays: [0, 1000, 3000, 5000],
        ...options.tusOptions,
        onProgress: (sent: number, total: number) => options.onProgress?.(sent, total),
        onSuccess: () => resolve(upload.url ?? endpoint),
        onError: (error: unknown) => reject(error),
      });
      options.onStart?.(upload);
      const begin = async (): Promise<void> => {
        if (options.resume !== false) {
          const previous = await upload.findPreviousUploads();
          if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
        }
        upload.start();
      };
      begin().catch(reject);
    });
  }
}

interface NodeBuffer {
  from(data: ArrayBuffer | string, offset?: number, length?: number): Uint8Array;
}

/**
 * What tus-js-client accepts here: anything in browsers (File, Blob, ...); in Node
 * only a Buffer or a Readable, so buffers, strings and Blobs are converted.
 */
async function tusSource(file: unknown): Promise<{ file: unknown; size?: number }> {
  const Buffer = (globalThis as { Buffer?: NodeBuffer & { isBuffer(x: unknown): boolean } }).Buffer;
  if (!Buffer || typeof (globalThis as { window?: unknown }).window !== "undefined" || Buffer.isBuffer(file)) return { file };
  if (typeof file === "string") return { file: Buffer.from(file) };
  if (file instanceof ArrayBuffer) return { file: Buffer.from(file) };
  if (ArrayBuffer.isView(file)) return { file: Buffer.from(file.buffer as ArrayBuffer, file.byteOffset, file.byteLength) };
  if (file instanceof Blob) {
    const { Readable } = await nodeModule<{ Readable: { fromWeb(stream: ReadableStream): unknown } }>("stream");
    return { file: Readable.fromWeb(file.stream()), size: file.size };
  }
  return { file };
}

function asBlob(body: Blob | ArrayBuffer | ArrayBufferView | string, type?: string): Blob {
  if (body instanceof Blob) return body;
  return new Blob([body as BlobPart], type ? { type } : {});
}

async function importTus(): Promise<TusModule> {
  const specifier = "tus-js-client";
  try {
    return (await import(/* @vite-ignore */ specifier)) as TusModule;
  } catch (error) {
    throw new Error("resumable uploads need tus-js-client (npm install tus-js-client), or pass its module as `tus`", {
      cause: error,
    });
  }
}
