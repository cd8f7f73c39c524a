import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import pg from 'pg';
import pRetry from 'p-retry';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import { quoteIdent, type EntityManager, type Orm } from '../persistence/database.ts';
import { toError } from './retry.ts';
import { publishTraced, untraced } from './tracing.ts';

interface OutboxRow {
  id: string;
  subject: string;
  aggregate_id: string;
  headers: Record<string, string>;
  payload: Buffer;
}

/** Dependencies and tuning of the {@link OutboxRelay}; times in milliseconds. */
export interface RelayOptions {
  orm: Orm;
  nc: NatsConnection;
  /** postgres:// URL for the dedicated LISTEN connection. */
  clientUrl: string;
  logger: Logger;
  metrics: PlatformMetrics;
  /** Service schema whose `outbox` table is relayed. */
  schema: string;
  /** Fallback poll interval when no NOTIFY arrives (default 1000). */
  pollIntervalMs?: number;
  /** Rows per transaction (default 200). */
  batchSize?: number;
  /** JetStream publish-ack timeout (default 2000). */
  publishTimeoutMs?: number;
  /** Published rows older than this are deleted (default 7 days). */
  retentionMs?: number;
  /** First backoff after a failed batch or a failed LISTEN attempt (default 100); doubles per failure. */
  minBackoffMs?: number;
  /** Longest backoff (default 5000). */
  maxBackoffMs?: number;
}

/**
 * Publishes outbox rows to JetStream. Woken by LISTEN `outbox_<schema>` (the table's insert
 * trigger NOTIFYs), with polling as the fallback. Each batch runs in one transaction that first
 * takes `pg_try_advisory_xact_lock`, so with several replicas one relays at a time, and
 * publishes its rows concurrently while keeping each aggregate's events in id (UUIDv7) order
 * (see {@link relayBatch}). Rows are marked published only after JetStream acknowledged them
 * (`msgID` = event id, so a re-send after a crash is dropped by the stream's duplicate window).
 * Tracing: each publish is a PRODUCER span in the trace of the write that stored the event
 * (messaging/tracing.ts `publishTraced`); polling and LISTEN make no spans (`untraced`).
 *
 * Recovery: while NATS or Postgres is unreachable a failed batch backs off (`minBackoffMs`
 * doubling to `maxBackoffMs`); NOTIFYs do not cut a backoff short (a burst of inserts would turn it
 * into a busy retry), a NATS reconnect and a re-established LISTEN do. When the LISTEN connection
 * is lost it is re-established with the same capped exponential backoff, for as long as it
 * takes, polling meanwhile; a lost connection is never an unhandled `'error'`.
 */
export class OutboxRelay {
  private readonly o: Required<RelayOptions>;
  private running = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private listener: pg.Client | undefined;
  private lastCleanup = 0;
  readonly #table: string;
  readonly #stopping = new AbortController();
  #relistening: Promise<void> | undefined;
  /** A NOTIFY arrived since the last batch began: look again before idling. */
  #notified = false;
  #backingOff = false;
  /** Kicked while no wait was in progress: skip the next one. */
  #kicked = false;

  constructor(options: RelayOptions) {
    this.#table = `${quoteIdent(options.schema)}.outbox`;
    this.o = {
      pollIntervalMs: 1000,
      batchSize: 200,
      publishTimeoutMs: 2000,
      retentionMs: 7 * 24 * 3600_000,
      minBackoffMs: 100,
      maxBackoffMs: 5000,
      ...withoutUndefined(options),
    };
  }

  /** True while the LISTEN connection is up (NOTIFY wakes the relay); false while it polls only. */
  get listening(): boolean {
    return this.listener !== undefined;
  }

  /** Starts listening and relaying; resolves once LISTEN is active. */
  async start(): Promise<void> {
    this.running = true;
    await this.listen();
    void (async () => {
      for await (const s of this.o.nc.status()) if (s.type === 'reconnect') this.kick();
    })();
    this.loop = this.run();
  }

  /** Stops after the batch in flight and closes the LISTEN connection. */
  async stop(): Promise<void> {
    this.running = false;
    this.#stopping.abort(new Error('outbox relay stopping'));
    this.kick();
    await this.loop;
    await this.#relistening;
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** Asks the loop to look at the outbox now, even during a backoff (or right after the batch in flight). */
  kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    if (wake) wake();
    else this.#kicked = true;
  }

  /** One LISTEN attempt on a new connection; rejects when Postgres cannot be reached. */
  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.o.clientUrl, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    // 'end' follows every loss; 'error' only needs a listener so that it never ends the process
    client.on('error', (err) => this.o.logger.warn({ err }, 'outbox LISTEN connection error'));
    client.on('notification', () => this.onNotify());
    try {
      // no spans: connecting and LISTEN happen at start and after every loss, not for a request
      await untraced(async () => {
        await client.connect();
        await client.query(`listen "outbox_${this.o.schema}"`);
      });
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    client.once('end', () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      if (!this.running) return;
      this.o.logger.warn('outbox LISTEN connection lost; polling until it is back');
      this.relisten();
    });
    this.listener = client;
  }

  /** Re-establishes LISTEN with capped exponential backoff until it works or the relay stops. */
  private relisten(): void {
    if (this.#relistening) return;
    this.#relistening = (async () => {
      try {
        await pRetry(() => this.listen().catch((err: unknown) => Promise.reject(toError(err))), {
          retries: Infinity,
          minTimeout: this.o.minBackoffMs,
          maxTimeout: this.o.maxBackoffMs,
          randomize: true,
          signal: this.#stopping.signal,
          onFailedAttempt: ({ error, retryDelay }) => this.o.logger.warn({ err: error, retryInMs: retryDelay }, 'outbox LISTEN failed; retrying'),
        });
        this.o.logger.info('outbox LISTEN re-established');
        this.kick(); // rows inserted while nobody listened
      } catch {
        // stopped meanwhile
      } finally {
        this.#relistening = undefined;
      }
    })();
  }

  /** A NOTIFY: wake the loop unless it is backing off (it looks at the outbox when the backoff ends). */
  private onNotify(): void {
    this.#notified = true;
    if (this.#backingOff) return;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (this.running) {
      let result: BatchResult = { published: 0, failure: undefined };
      try {
        // polling makes no spans (an idle relay exports nothing); each publish is its own span in its event's trace
        result = await untraced(() => this.relayBatch());
      } catch (err) {
        result = { published: 0, failure: err };
      }
      if (result.failure === undefined) {
        backoff = 0;
      } else {
        backoff = Math.min(backoff === 0 ? this.o.minBackoffMs : backoff * 2, this.o.maxBackoffMs);
        this.o.logger.warn({ err: result.failure, retryInMs: backoff }, 'outbox relay could not publish; retrying');
      }
      if (!this.running) break;
      if (backoff === 0 && (result.published >= this.o.batchSize || this.#notified)) continue;
      this.#backingOff = backoff > 0;
      await this.idle(backoff || this.o.pollIntervalMs);
      this.#backingOff = false;
    }
  }

  /** Waits `ms`, or less when kicked (NOTIFY outside a backoff, NATS reconnect, LISTEN back, stop). */
  private idle(ms: number): Promise<void> {
    if (this.#kicked) {
      this.#kicked = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Publishes up to one batch and marks what JetStream acknowledged, in one transaction.
   *
   * The batch is published concurrently, one chain per aggregate: events of different aggregates
   * are in flight together (pipelined on the one NATS connection), while the events of one
   * aggregate go out one after the other, each only once the previous one was acknowledged. So a
   * failed publish can never let a later event of the same aggregate into the stream ahead of it:
   * the failed event and the rest of its aggregate's chain stay unpublished and go out, in order,
   * in a later batch; the other aggregates' chains go on, and their acknowledged events commit as
   * published (so an event that keeps failing holds back its own aggregate only). While NATS is
   * away every chain fails at its first publish, all within one publish timeout.
   *
   * What order consumers can rely on: per aggregate, outbox (id) order — stream order follows it,
   * and a re-send after an ack that never arrived is dropped by JetStream's duplicate window
   * (`Nats-Msg-Id` = event id). Across aggregates no order is promised (nor was it needed); and
   * consumers still see reordering of their own (a nak'ed event is redelivered after later ones),
   * which they resolve by the aggregate version.
   */
  async relayBatch(): Promise<BatchResult> {
    // cleared before the rows are read: a NOTIFY from now on may be about a row this batch misses
    this.#notified = false;
    const js = jetstream(this.o.nc, { timeout: this.o.publishTimeoutMs });
    const em = this.o.orm.em.fork();
    const result = await em.transactional(async (tem): Promise<BatchResult> => {
      const [lock] = await tem.execute<{ locked: boolean }[]>('select pg_try_advisory_xact_lock(hashtext(?)) as locked', [`outbox:${this.o.schema}`]);
      if (!lock?.locked) return { published: 0, failure: undefined };
      const rows = await tem.execute<OutboxRow[]>(
        `select id, subject, aggregate_id, headers, payload from ${this.#table} where published_at is null order by id limit ?`,
        [this.o.batchSize],
      );
      const chains = new Map<string, OutboxRow[]>();
      for (const row of rows) {
        const chain = chains.get(row.aggregate_id);
        if (chain) chain.push(row);
        else chains.set(row.aggregate_id, [row]);
      }
      const done: string[] = [];
      let failure: unknown;
      const publish = (row: OutboxRow) =>
        publishTraced({ id: row.id, subject: row.subject, headers: row.headers, bodySize: row.payload.length }, (headers) => {
          const h = natsHeaders();
          for (const [k, v] of Object.entries(headers)) h.set(k, v);
          return js.publish(row.subject, row.payload, { msgID: row.id, headers: h, timeout: this.o.publishTimeoutMs });
        });
      await Promise.all(
        [...chains.values()].map(async (chain) => {
          for (const row of chain) {
            try {
              await publish(row);
              done.push(row.id);
            } catch (err) {
              failure ??= err;
              return; // the rest of this aggregate waits for the next batch
            }
          }
        }),
      );
      if (done.length > 0) {
        // one text parameter: the driver would expand a JS array into a list of placeholders
        await tem.execute(`update ${this.#table} set published_at = now() where id = any(string_to_array(?, ',')::uuid[])`, [done.join(',')]);
      }
      return { published: done.length, failure };
    });
    this.o.metrics.outboxPublished.inc(result.published);
    await this.observe(em);
    return result;
  }

  private async observe(em: EntityManager): Promise<void> {
    const [stats] = await em.execute<{ backlog: string; age: number | null }[]>(
      `select count(*) as backlog, extract(epoch from now() - min(occurred_at))::float8 as age from ${this.#table} where published_at is null`,
    );
    this.o.metrics.outboxBacklog.set(Number(stats?.backlog ?? 0));
    this.o.metrics.outboxOldestAge.set(stats?.age ?? 0);
    if (Date.now() - this.lastCleanup > 3600_000) {
      this.lastCleanup = Date.now();
      await em.execute(`delete from ${this.#table} where published_at < now() - (? * interval '1 millisecond')`, [this.o.retentionMs]);
    }
  }
}

/** Outcome of one relay batch. */
export interface BatchResult {
  published: number;
  failure: unknown;
}

/** `options` without the keys set to `undefined`, so they do not override defaults when spread. */
function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as T;
}
