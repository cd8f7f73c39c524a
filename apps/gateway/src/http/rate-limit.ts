import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { LRUCache } from 'lru-cache';
import pg from 'pg';

/**
 * express-rate-limit store on Postgres (table `gateway.rate_limit`, created by the gateway's
 * migrations), so every gateway replica counts against the same limit. Fixed windows of the
 * limiter's `windowMs`, starting at a key's first hit; the window's end comes from the database
 * clock. Several stores share one {@link RateLimitDatabase}, each with its own `prefix`
 * (express-rate-limit wants one store per limiter); the database counts far from the limit in
 * memory and near it in Postgres (see {@link RateLimitDatabase.increment}). Expired rows are
 * deleted now and then by the increments.
 *
 * Why not a package: `@acpr/rate-limit-postgresql` creates its own schema with its own migration
 * tool at run time and pins an old `pg`; the table here is a MikroORM migration like every other.
 */
export class PostgresRateLimitStore implements Store {
  readonly prefix: string;
  /** Keys counted here count for every replica (express-rate-limit's double-count check). */
  readonly localKeys = false;
  readonly #db: RateLimitDatabase;
  #windowMs = 60_000;
  #limit = Number.POSITIVE_INFINITY;

  /** `prefix` (e.g. `ip:`) is prepended to every key, so limiters sharing the table never mix. */
  constructor(db: RateLimitDatabase, prefix: string) {
    this.#db = db;
    this.prefix = prefix;
  }

  init(options: Options): void {
    this.#windowMs = options.windowMs;
    // a limit computed per request has no fixed size: every hit is then counted in Postgres
    this.#limit = typeof options.limit === 'number' ? options.limit : 0;
  }

  /** Counts one hit; a key whose window has ended starts a new one with this hit. */
  increment(key: string): Promise<IncrementResponse> {
    return this.#db.increment(this.prefix + key, this.#windowMs, this.#limit);
  }

  /** The current window of `key`, if it has one. */
  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const { rows } = await this.#db.pool.query<{ hits: number; reset_at: Date }>(
      'select hits, reset_at from gateway.rate_limit where key = $1 and reset_at > now()',
      [this.prefix + key],
    );
    const row = rows[0];
    return row ? { totalHits: row.hits, resetTime: row.reset_at } : undefined;
  }

  async decrement(key: string): Promise<void> {
    await this.#db.pool.query('update gateway.rate_limit set hits = greatest(hits - 1, 0) where key = $1 and reset_at > now()', [this.prefix + key]);
  }

  async resetKey(key: string): Promise<void> {
    this.#db.forget(this.prefix + key);
    await this.#db.pool.query('delete from gateway.rate_limit where key = $1', [this.prefix + key]);
  }
}

/** The hits of one key going out in the next statement: counted locally before, or waiting for their total. */
interface Batch {
  windowMs: number;
  /** Hits counted in memory and not yet stored (no one waits for them). */
  counted: number;
  /** Hits whose requests wait for the stored total. */
  waiting: { resolve(response: IncrementResponse): void; reject(error: unknown): void }[];
}

/** What this replica knows of a key's window: the stored total at the last statement, and hits counted since. */
interface KnownWindow {
  stored: number;
  /** Hits admitted in memory since, not yet sent. */
  unsent: number;
  resetTime: Date;
  windowMs: number;
}

/**
 * Counts `n` hits per key in one statement: keys in a fixed order (sorted, distinct), so two
 * replicas' statements lock shared rows in the same order and never deadlock.
 */
const INCREMENT_SQL = `insert into gateway.rate_limit as r (key, hits, reset_at)
  select t.key, t.n, now() + make_interval(secs => t.window_ms / 1000)
  from unnest($1::text[], $2::int[], $3::float8[]) as t(key, n, window_ms)
  order by t.key
  on conflict (key) do update set
    hits = case when r.reset_at <= now() then excluded.hits else r.hits + excluded.hits end,
    reset_at = case when r.reset_at <= now() then excluded.reset_at else r.reset_at end
  returning key, hits, reset_at`;

/**
 * Share of a limit that is counted in memory: while this replica's view of a key (stored total plus
 * its own unsent hits) stays below half the limit, a hit is admitted at once and sent with the next
 * background statement; from half the limit on, every hit waits for Postgres's total.
 */
export const LOCAL_SHARE = 0.5;
/** Hits counted in memory are sent at the latest this long after the first of them, ms. */
export const SYNC_INTERVAL_MS = 100;
/** Near the end of a window (pods' clocks differ from the database's), hits are counted in Postgres, ms. */
const WINDOW_END_MARGIN_MS = 1000;

/**
 * The connection pool the rate-limit stores share, with the housekeeping of their table.
 *
 * **Counting far from the limit in memory, near it in Postgres.** A hit of a key whose total (as of
 * this replica's last statement, plus the hits it admitted since) is below {@link LOCAL_SHARE} of the
 * limit is admitted without a round trip; such hits are sent within {@link SYNC_INTERVAL_MS}, and
 * the statement's answer refreshes the replica's view with every replica's hits. From half the limit
 * on (and for a key's first hit, and near the end of a window) a hit waits for the stored total, so
 * the refusal at the limit itself is exact across replicas. What this costs in precision: until the
 * next statement a replica does not see the others' hits, so with R replicas a caller can pass the
 * limit only by sending more than half of it to them within one interval (300 requests in 100 ms
 * for the default 600 per minute) — and is then refused by the next exact count. Measured: the
 * counting statement per request was about a tenth of the gateway's CPU per read.
 *
 * **Group commit.** While one counting statement runs, the hits that arrive — from every limiter,
 * for every key, in memory or waiting — go out together in the next statement, which adds each
 * key's count at once and hands the waiting hits of a key consecutive totals (the last of them the
 * stored total), exactly as one upsert per hit would have counted them. So a busy gateway sends a
 * few statements per round trip instead of two per request, and requests never queue on the row
 * lock of a hot key (one client address, one user).
 */
export class RateLimitDatabase {
  readonly pool: pg.Pool;
  #batches = new Map<string, Batch>();
  /** Keys with hits admitted in memory and not yet sent. */
  #unsentKeys = new Set<string>();
  #known = new LRUCache<string, KnownWindow>({
    max: 100_000,
    // a key pushed out with hits not yet sent: they still count
    dispose: (window, key, reason) => {
      if (reason === 'evict' && window.unsent > 0) this.#add(key, window.windowMs).counted += window.unsent;
    },
  });
  /** The running flush, if any. */
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param databaseUrl the gateway's database (schema `gateway` migrated).
   * @param queryTimeoutMs a counter query slower than this fails, and the limiter lets the request
   *   through (failing open: a slow database must not stop the API on top of what it already does).
   */
  constructor(databaseUrl: string, queryTimeoutMs = 2000) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 10, query_timeout: queryTimeoutMs });
    // an idle client losing its connection must not crash the process; the next query reconnects
    this.pool.on('error', () => undefined);
  }

  /**
   * Counts one hit of `key` in its `windowMs` window against `limit` (hits per window; 0: always
   * counted in Postgres); resolves the hits of the window so far (this one included, as far as this
   * replica knows) and when it ends. Rejects when the statement fails (the limiter then lets the
   * request through).
   */
  increment(key: string, windowMs: number, limit = 0): Promise<IncrementResponse> {
    if (Math.random() < 0.001) this.deleteExpired();
    const known = this.#known.get(key);
    if (known && known.stored + known.unsent + 1 < limit * LOCAL_SHARE && known.resetTime.getTime() - WINDOW_END_MARGIN_MS > Date.now()) {
      known.unsent += 1;
      this.#unsentKeys.add(key);
      // the background statement belongs to no request: outside the context of the one that
      // happened to start the timer (its trace would otherwise gain a span after it ended)
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        context.with(ROOT_CONTEXT, () => this.#startFlush());
      }, SYNC_INTERVAL_MS);
      return Promise.resolve({ totalHits: known.stored + known.unsent, resetTime: known.resetTime });
    }
    return new Promise((resolve, reject) => {
      this.#add(key, windowMs).waiting.push({ resolve, reject });
      // after the current tick: hits of the same tick share the statement
      queueMicrotask(() => this.#startFlush());
    });
  }

  /** Drops what this replica knows of `key` (its window was reset): hits counted in memory and not yet sent are dropped; hits waiting for a total still get one. */
  forget(key: string): void {
    this.#known.delete(key);
    // hits waiting for the next statement still get their total: only the in-memory ones are dropped
    const batch = this.#batches.get(key);
    if (batch) batch.counted = 0;
  }

  #add(key: string, windowMs: number): Batch {
    let batch = this.#batches.get(key);
    if (!batch) this.#batches.set(key, (batch = { windowMs, counted: 0, waiting: [] }));
    return batch;
  }

  #startFlush(): void {
    this.#flushing ??= this.#flush();
  }

  /** Moves every key's unsent in-memory hits into the next statement. */
  #collectUnsent(): void {
    for (const key of this.#unsentKeys) {
      const window = this.#known.peek(key);
      if (!window || window.unsent === 0) continue;
      this.#add(key, window.windowMs).counted += window.unsent;
      window.stored += window.unsent;
      window.unsent = 0;
    }
    this.#unsentKeys.clear();
  }

  /** Sends the batched hits in one statement, then the ones that arrived meanwhile, until none wait. */
  async #flush(): Promise<void> {
    await Promise.resolve(); // #startFlush has stored this promise before the loop can end
    try {
      this.#collectUnsent();
      while (this.#batches.size > 0) {
        const batches = this.#batches;
        this.#batches = new Map();
        const keys = [...batches.keys()].sort();
        try {
          const { rows } = await this.pool.query<{ key: string; hits: number; reset_at: Date }>({
            name: 'rate-limit-increment',
            text: INCREMENT_SQL,
            values: [keys, keys.map((k) => batches.get(k)!.counted + batches.get(k)!.waiting.length), keys.map((k) => batches.get(k)!.windowMs)],
          });
          for (const row of rows) {
            const batch = batches.get(row.key);
            batches.delete(row.key);
            if (!batch) continue;
            const known = this.#known.get(row.key);
            // the stored total includes every hit this replica sent, and what it admitted since comes on top
            this.#known.set(row.key, { stored: row.hits, unsent: known?.unsent ?? 0, resetTime: row.reset_at, windowMs: batch.windowMs });
            const first = row.hits - batch.waiting.length + 1;
            batch.waiting.forEach((hit, i) => hit.resolve({ totalHits: first + i, resetTime: row.reset_at }));
          }
          for (const batch of batches.values()) for (const hit of batch.waiting) hit.reject(new Error('rate-limit upsert returned no row'));
        } catch (error) {
          // in-memory hits of a failed statement are lost (the limiter fails open anyway); waiting ones fail open
          for (const [key, batch] of batches) {
            this.#known.delete(key);
            for (const hit of batch.waiting) hit.reject(error);
          }
        }
        this.#collectUnsent();
      }
    } finally {
      // no await between the loop's last check and this: a hit arriving later starts a new flush
      this.#flushing = undefined;
    }
  }

  /** Deletes windows that ended (best effort, in the background). */
  deleteExpired(): void {
    void this.pool.query('delete from gateway.rate_limit where reset_at < now()').catch(() => undefined);
  }

  /** Sends the hits counted in memory, then closes the pool. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#startFlush();
    await this.#flushing;
    await this.pool.end();
  }
}
