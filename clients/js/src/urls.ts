/** The addresses derived from a server's base URL. */

export interface ServerUrls {
  /** The base, without a trailing slash: http(s)://host:port[/prefix]. */
  base: string;
  /** ws(s)://host:port[/prefix]/ws */
  ws: string;
  /** http(s)://host:port[/prefix]/fs/ */
  fs: string;
  /** http(s)://host:port[/prefix]/tus/ */
  tus: string;
}

export function serverUrls(baseUrl: string): ServerUrls {
  const url = new URL(baseUrl);
  if (url.protocol === "ws:" || url.protocol === "wss:") {
    url.protocol = url.protocol === "ws:" ? "http:" : "https:";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`the server URL must be http(s)://host:port, not ${baseUrl}`);
  }
  url.search = "";
  url.hash = "";
  const base = url.href.replace(/\/+$/, "");
  const ws = base.replace(/^http/, "ws") + "/ws";
  return { base, ws, fs: `${base}/fs/`, tus: `${base}/tus/` };
}

/** One path segment per "/", each percent-encoded. */
export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}
