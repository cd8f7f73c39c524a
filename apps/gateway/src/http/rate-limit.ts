import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import pg from 'pg';

/**
 * express-rate-limit store on Postgres (table `gateway.rate_limit`, created by the gateway's
 * migrations), so every gateway replica counts against the same limit. Fixed windows of the
 * limiter's `windowMs`, starting at a key's first hit: each request counts one hit (`increment`),
 * atomically under concurrency; the window's end comes from the database clock. Several stores share
 * one {@link RateLimitDatabase}, each with its own `prefix` (express-rate-limit wants one store per
 * limiter), and the database coalesces the increments of all of them into few statements (see
 * {@link RateLimitDatabase.increment}). Expired rows are deleted now and then by the increments.
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

  /** `prefix` (e.g. `ip:`) is prepended to every key, so limiters sharing the table never mix. */
  constructor(db: RateLimitDatabase, prefix: string) {
    this.#db = db;
    this.prefix = prefix;
  }

  init(options: Options): void {
    this.#windowMs = options.windowMs;
  }

  /** Counts one hit; a key whose window has ended starts a new one with this hit. */
  increment(key: string): Promise<IncrementResponse> {
    return this.#db.increment(this.prefix + key, this.#windowMs);
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
    await this.#db.pool.query('delete from gateway.rate_limit where key = $1', [this.prefix + key]);
  }
}

/** An increment waiting for the next statement. */
interface PendingHit {
  key: string;
  windowMs: number;
  resolve(response: IncrementResponse): void;
  reject(error: unknown): void;
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
 * The connection pool the rate-limit stores share, with the housekeeping of their table.
 *
 * Increments are coalesced (group commit): while one counting statement runs, the hits that arrive
 * — from every limiter, for every key — wait and then go out together in the next statement, which
 * adds each key's count at once and hands the hits of a key consecutive totals (the first of them
 * `previous + 1`, …, the last the stored total), exactly as one upsert per hit would have counted
 * them. So a busy gateway sends a few counting statements per round trip instead of two per request,
 * and requests no longer queue on the row lock of a hot key (one client address, one user).
 */
export class RateLimitDatabase {
  readonly pool: pg.Pool;
  #queue: PendingHit[] = [];
  #flushing = false;

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
   * Counts one hit of `key` in its `windowMs` window; resolves the hits of the window so far
   * (this one included) and when it ends. Rejects when the statement fails (the limiter then lets
   * the request through).
   */
  increment(key: string, windowMs: number): Promise<IncrementResponse> {
    if (Math.random() < 0.001) this.deleteExpired();
    return new Promise((resolve, reject) => {
      this.#queue.push({ key, windowMs, resolve, reject });
      // after the current tick: hits of the same tick share the statement
      if (!this.#flushing) {
        this.#flushing = true;
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  /** Sends the waiting hits in one statement, then the ones that arrived meanwhile, until none wait. */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      const byKey = new Map<string, PendingHit[]>();
      for (const hit of batch) {
        const same = byKey.get(hit.key);
        if (same) same.push(hit);
        else byKey.set(hit.key, [hit]);
      }
      const keys = [...byKey.keys()].sort();
      try {
        const { rows } = await this.pool.query<{ key: string; hits: number; reset_at: Date }>({
          name: 'rate-limit-increment',
          text: INCREMENT_SQL,
          values: [keys, keys.map((k) => byKey.get(k)!.length), keys.map((k) => byKey.get(k)![0]!.windowMs)],
        });
        for (const row of rows) {
          const hits = byKey.get(row.key) ?? [];
          byKey.delete(row.key);
          hits.forEach((hit, i) => hit.resolve({ totalHits: row.hits - hits.length + i + 1, resetTime: row.reset_at }));
        }
        for (const hits of byKey.values()) for (const hit of hits) hit.reject(new Error('rate-limit upsert returned no row'));
      } catch (error) {
        for (const hit of batch) hit.reject(error);
      }
    }
    this.#flushing = false;
  }

  /** Deletes windows that ended (best effort, in the background). */
  deleteExpired(): void {
    void this.pool.query('delete from gateway.rate_limit where reset_at < now()').catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
