/** The close-code table: which ends of a connection the client retries. */

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  MESSAGE_TOO_BIG: 1009,
  UNKNOWN: 4000,
  FATAL_DECODE: 4002,
  NO_AUTH: 4003,
  AUTH_FAILED: 4004,
  DUPLICATE_AUTH: 4005,
  BAD_SECRET: 4006,
  BAD_VERSION: 4007,
  BAD_AUTH: 4008,
  HB_FAILED: 4009,
  KICKED: 4010,
  SERVER_LEFT: 4011,
} as const;

/** The request itself is wrong, or an operator said no: never retried. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4002, 4003, 4005, 4006, 4007, 4008, 4010]);

/** True if a connection that ended with `code` should not be retried. */
export function isTerminal(code: number): boolean {
  return TERMINAL_CLOSE_CODES.has(code);
}

/**
 * Full-jitter exponential backoff: a uniformly random wait between 0 and
 * min(max, min * 2^attempt) milliseconds (attempt counts from 0).
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}
