/** Where the WebSocket class comes from: the platform's, or the `ws` package on older Node. */

/** The part of the WebSocket API this client uses (browsers, Node 22+, and `ws`). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

let fromPackage: Promise<WebSocketConstructor> | null = null;

/**
 * The global WebSocket when there is one (browsers, Node 22+), else the `ws`
 * package's (an optional peer dependency, needed on Node 20 and 21).
 */
export async function webSocketClass(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return given;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  fromPackage ??= importWs();
  return fromPackage;
}

async function importWs(): Promise<WebSocketConstructor> {
  const specifier = "ws"; // a variable: bundlers and TypeScript leave the optional peer alone
  try {
    const module = (await import(/* @vite-ignore */ specifier)) as { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor };
    const found = module.WebSocket ?? module.default;
    if (found) return found;
  } catch (error) {
    fromPackage = null;
    throw new Error(
      "this JavaScript runtime has no global WebSocket (Node before 22): install the `ws` package (npm install ws)",
      { cause: error },
    );
  }
  fromPackage = null;
  throw new Error("the `ws` package does not export a WebSocket class");
}

/** The text of a message event, or null for a binary frame. */
export function frameText(data: unknown): string | null {
  if (typeof data === "string") return data;
  return null;
}
