import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import pg from 'pg';

/**
 * express-rate-limit store on Postgres (table `gateway.rate_limit`, created by the gateway's
 * migrations), so every gateway replica counts against the same limit. Fixed windows of the
 * limiter's `windowMs`, starting at a key's first hit: one upsert per request (`increment`),
 * atomic under concurrency; the window's end comes from the database clock. Several stores share
 * one {@link RateLimitDatabase}, each with its own `prefix` (express-rate-limit wants one store per
 * limiter). Expired rows are deleted now and then by the increments themselves.
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
  async increment(key: string): Promise<IncrementResponse> {
    if (Math.random() < 0.001) this.#db.deleteExpired();
    const { rows } = await this.#db.pool.query<{ hits: number; reset_at: Date }>(
      `insert into gateway.rate_limit as r (key, hits, reset_at)
       values ($1, 1, now() + make_interval(secs => $2::float8 / 1000))
       on conflict (key) do update set
         hits = case when r.reset_at <= now() then 1 else r.hits + 1 end,
         reset_at = case when r.reset_at <= now() then excluded.reset_at else r.reset_at end
       returning hits, reset_at`,
      [this.prefix + key, this.#windowMs],
    );
    const row = rows[0];
    if (!row) throw new Error('rate-limit upsert returned no row');
    return { totalHits: row.hits, resetTime: row.reset_at };
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

/** The connection pool the rate-limit stores share, with the housekeeping of their table. */
export class RateLimitDatabase {
  readonly pool: pg.Pool;

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

  /** Deletes windows that ended (best effort, in the background). */
  deleteExpired(): void {
    void this.pool.query('delete from gateway.rate_limit where reset_at < now()').catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
