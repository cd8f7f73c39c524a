/** Backoff of retries; times in milliseconds. */
export interface RetryBackoff {
  /** Delay before the first retry (default 100); doubles per attempt. */
  initialDelayMs?: number;
  /** Longest delay between two attempts (default 10 000). */
  maxDelayMs?: number;
}

/** Default backoff of consumers: 100 ms doubling to 10 s. */
export const DEFAULT_RETRY_BACKOFF: Required<RetryBackoff> = { initialDelayMs: 100, maxDelayMs: 10_000 };

/** `backoff` with the defaults filled in (an `undefined` field takes its default). */
export function resolveBackoff(backoff: RetryBackoff = {}): Required<RetryBackoff> {
  return {
    initialDelayMs: backoff.initialDelayMs ?? DEFAULT_RETRY_BACKOFF.initialDelayMs,
    maxDelayMs: backoff.maxDelayMs ?? DEFAULT_RETRY_BACKOFF.maxDelayMs,
  };
}

/** Delay before retry number `attempt` (1 = first retry): `initialDelayMs` doubled per attempt, capped at `maxDelayMs`. */
export function retryDelayMs(attempt: number, backoff: RetryBackoff = {}): number {
  const { initialDelayMs, maxDelayMs } = resolveBackoff(backoff);
  return Math.min(initialDelayMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)), maxDelayMs);
}

const UNAVAILABLE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);
const UNAVAILABLE_MESSAGE =
  /connection terminated|not queryable|timeout exceeded when trying to connect|terminating connection|connection lost|server closed the connection|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * True when `err` (or an error in its `cause` chain) says the database cannot be reached or lost
 * the connection — not that the work is wrong: SQLSTATE class 08 (connection exception), 53
 * (insufficient resources, e.g. too many connections), 57P01–57P03 (terminated by an
 * administrator, crash shutdown, cannot connect now); network errors (ECONNREFUSED, ECONNRESET, …);
 * and node-postgres' own "connection terminated" / "not queryable" / connect-timeout errors.
 * Read by shape, not class: errors of Node's sockets may come from another realm.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 8; depth++) {
    const { code, message, cause } = e as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && (code.startsWith('08') || code.startsWith('53') || /^57P0[123]$/.test(code) || UNAVAILABLE_NETWORK_CODES.has(code))) {
      return true;
    }
    if (typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message)) return true;
    e = cause;
  }
  return false;
}

/**
 * `err` as an `Error` of this realm: itself when it is one, else a new `Error` with its message,
 * `code` and the original as `cause`. p-retry gives up at once on anything that is not
 * `instanceof Error` — and errors raised by Node's sockets are not, where code runs in another
 * realm (a `vm` context, as under Jest).
 */
export function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  const { message, code } = (typeof err === 'object' && err !== null ? err : {}) as { message?: unknown; code?: unknown };
  const error = new Error(typeof message === 'string' ? message : String(err), { cause: err });
  if (code !== undefined) Object.assign(error, { code });
  return error;
}
