import { Counter } from 'prom-client';
import type { BackgroundWorker, EntityManager, Logger, Orm, PlatformMetrics } from '@crm/platform';
import { candidatesOfRecords, pgArray } from './duplicate.candidates.ts';
import type { DuplicateObject } from './duplicate.rules.ts';

/**
 * The duplicate scan: keeps `duplicate_pair` — what `GET /…/duplicates` lists — equal to the
 * candidate search over the current records, without ever comparing all pairs. Every write of a
 * company or contact that changes a matching column (or its liveness) queues the record
 * (statement-level triggers, see the migration); the scan drains the queue in batches: for each
 * queued record it drops the record's stored pairs and stores its current candidates (every
 * score, so lists can ask for any threshold). Recomputing from the rows as they are makes the
 * order of queue entries irrelevant and a rescan idempotent.
 *
 * Safe with several replicas: a batch of queue rows is claimed with `for update skip locked` and
 * deleted in the transaction that stores its pairs (a failed batch rolls back, counts an attempt
 * against its entries and is claimed again, alone, until parked); batches of one organization and
 * object are serialised by a transaction-level advisory lock, so the last writer of a pair always
 * read both records after the change that queued them. Work per batch is bounded: at most
 * {@link SCAN_BATCH} records (or one queue row), each arm of the candidate statement at most
 * `ARM_LIMIT` hits (duplicate.candidates.ts), and pairs below `PAIR_FLOOR` are not stored.
 */

/** Records rescanned per transaction (at least one queue row is taken whole: up to 500 records). */
export const SCAN_BATCH = 200;

/** Organization groups (organization and object) served per round, oldest entry first. */
const GROUPS_PER_ROUND = 50;

/** Failed scans of a queue entry after which it is parked (left for an operator, logged and counted). */
export const SCAN_MAX_ATTEMPTS = 5;

/** How long the scan sleeps when the queue is empty, ms: pairs appear within about this after a write. */
export const SCAN_IDLE_MS = 250;

interface Claimed {
  id: string;
  record_ids: string[];
}

/** What one round of the scan did. */
export interface ScanRound {
  /** Records rescanned. */
  records: number;
  /** Groups whose batch failed (their entries' attempts counted up). */
  failed: number;
  /** Entries parked in this round. */
  parked: number;
}

/** Options of {@link scanDuplicatesOnce}. */
export interface ScanOptions {
  /** Records per group and transaction (default {@link SCAN_BATCH}). */
  batch?: number;
  /**
   * Wait for entries another scanner holds instead of skipping them (`for update` rather than
   * `skip locked`): a drain that returns only once everything queued before it is scanned.
   */
  wait?: boolean;
  logger?: Logger;
  /** Counts parked entries (`duplicate_scan_parked_total`). */
  parkedCounter?: Counter;
}

/**
 * One round of the scan, fair between organizations: each organization and object with queued
 * entries (up to {@link GROUPS_PER_ROUND}, the one waiting longest first) gets one batch of at
 * least `batch` records (or all it has) in its own transaction, so a big backlog of one
 * organization delays the others by one batch per round at most, and a failing batch rolls back
 * only its own group. A failed batch counts up its entries' `attempts` (with the error) in a
 * separate transaction; an entry that failed before is retried alone (so one bad entry cannot
 * fail its neighbours again), and after {@link SCAN_MAX_ATTEMPTS} failures it is parked — no
 * longer claimed, logged as an error and counted. Resolves with what the round did.
 */
export async function scanDuplicatesOnce(orm: Orm, options: ScanOptions = {}): Promise<ScanRound> {
  const batch = options.batch ?? SCAN_BATCH;
  const groups = await orm.em.fork().execute<{ organization_id: string; object: DuplicateObject }[]>(
    `select organization_id, object from contacts.duplicate_scan_queue where parked_at is null
     group by organization_id, object order by min(queued_at) limit ?`,
    [GROUPS_PER_ROUND],
  );
  const round: ScanRound = { records: 0, failed: 0, parked: 0 };
  for (const group of groups) {
    let taken: string[] = [];
    try {
      round.records += await orm.em.fork().transactional(async (em) => {
        const queued = await em.execute<{ id: string; n: number; attempts: number }[]>(
          `select id, cardinality(record_ids) as n, attempts from contacts.duplicate_scan_queue
           where organization_id = ? and object = ? and parked_at is null order by queued_at limit ? for update${options.wait ? '' : ' skip locked'}`,
          [group.organization_id, group.object, batch],
        );
        taken = [];
        let records = 0;
        for (const q of queued) {
          if (records >= batch || (taken.length > 0 && q.attempts > 0)) break;
          taken.push(q.id);
          records += Number(q.n);
          if (q.attempts > 0) break; // failed before: alone
        }
        if (taken.length === 0) return 0;
        const claimed = await em.execute<Claimed[]>(
          'delete from contacts.duplicate_scan_queue where organization_id = ? and id = any(?::uuid[]) returning id, record_ids',
          [group.organization_id, pgArray(taken)],
        );
        await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`contacts.duplicates:${group.organization_id}:${group.object}`]);
        const ids = [...new Set(claimed.flatMap((c) => c.record_ids))];
        await rescan(em, group.organization_id, group.object, ids);
        return ids.length;
      });
    } catch (err) {
      round.failed++;
      if (taken.length === 0) throw err; // the claim itself failed: nothing to count against an entry
      const parked = await orm.em.fork().execute<{ id: string; attempts: number }[]>(
        `update contacts.duplicate_scan_queue set attempts = attempts + 1, last_error = left(?, 2000),
           parked_at = case when attempts + 1 >= ? then clock_timestamp() end
         where organization_id = ? and id = any(?::uuid[]) and parked_at is null returning id, attempts`,
        [err instanceof Error ? err.message : String(err), SCAN_MAX_ATTEMPTS, group.organization_id, pgArray(taken)],
      );
      const gaveUp = parked.filter((q) => q.attempts >= SCAN_MAX_ATTEMPTS).map((q) => q.id);
      options.logger?.warn({ err, organizationId: group.organization_id, object: group.object, entries: taken }, 'duplicate scan batch failed');
      if (gaveUp.length) {
        round.parked += gaveUp.length;
        options.parkedCounter?.inc(gaveUp.length);
        options.logger?.error({ organizationId: group.organization_id, object: group.object, entries: gaveUp }, 'duplicate scan entries parked');
      }
    }
  }
  return round;
}

/**
 * Scans until nothing is queued (parked entries aside), waiting for entries other scanners hold:
 * when it resolves, every record queued before the call is rescanned. For tests and tools (the
 * worker uses {@link scanDuplicatesOnce}). Gives up after `maxRounds` rounds (default 1,000).
 */
export async function drainDuplicateScan(orm: Orm, maxRounds = 1000): Promise<void> {
  for (let round = 0; round < maxRounds; round++) {
    const done = await scanDuplicatesOnce(orm, { wait: true });
    if (done.records === 0 && done.failed === 0) return;
  }
  throw new Error(`the duplicate scan queue did not drain in ${maxRounds} rounds`);
}

/** Pairs inserted per statement (bounded parameter size). */
const INSERT_CHUNK = 1000;

/**
 * Replaces the stored pairs of records `ids` with their current candidates scoring at least
 * `PAIR_FLOOR` (none for records no longer live), at most `MAX_PAIRS_PER_RECORD` per record.
 */
async function rescan(em: EntityManager, organizationId: string, object: DuplicateObject, ids: string[]): Promise<void> {
  const candidates = await candidatesOfRecords(em, organizationId, object, ids);
  const idList = pgArray(ids);
  await em.execute(
    'delete from contacts.duplicate_pair where organization_id = ? and object = ? and (record_id = any(?::uuid[]) or duplicate_id = any(?::uuid[]))',
    [organizationId, object, idList, idList],
  );
  // a pair found from both of its records (both in this batch) is stored once
  const pairs = new Map<string, { r: string; d: string; s: number; reasons: unknown }>();
  for (const [probe, found] of candidates) {
    for (const c of found) {
      const [r, d] = probe < c.recordId ? [probe, c.recordId] : [c.recordId, probe];
      pairs.set(`${r}:${d}`, { r, d, s: c.score, reasons: c.reasons });
    }
  }
  const all = [...pairs.values()];
  for (let i = 0; i < all.length; i += INSERT_CHUNK) {
    const chunk = all.slice(i, i + INSERT_CHUNK);
    await em.execute(
      `insert into contacts.duplicate_pair (organization_id, object, record_id, duplicate_id, score, reasons, computed_at)
       select ?, ?, x.r, x.d, x.s, x.reasons, now() from unnest(?::uuid[], ?::uuid[], ?::int[], ?::jsonb[]) as x (r, d, s, reasons)
       on conflict (organization_id, object, record_id, duplicate_id) do update set score = excluded.score, reasons = excluded.reasons, computed_at = excluded.computed_at`,
      [
        organizationId,
        object,
        pgArray(chunk.map((p) => p.r)),
        pgArray(chunk.map((p) => p.d)),
        `{${chunk.map((p) => p.s).join(',')}}`,
        pgArray(chunk.map((p) => JSON.stringify(p.reasons))),
      ],
    );
  }
}

/**
 * Starts the scan in this process: rounds back to back while they find work, then every
 * `idleMs`. A failed round (e.g. the database unreachable) is logged and retried after `idleMs`;
 * a failed batch only counts against its entries (see {@link scanDuplicatesOnce}). `stop()`
 * cancels the next round and waits for a running one. Parked entries are counted in
 * `duplicate_scan_parked_total` of `metrics` when given.
 */
export function startDuplicateScanWorker(deps: { orm: Orm; logger: Logger; metrics?: PlatformMetrics }, idleMs = SCAN_IDLE_MS): BackgroundWorker {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const parkedCounter = deps.metrics
    ? new Counter({
        name: 'duplicate_scan_parked_total',
        help: 'duplicate scan queue entries parked after repeated failures',
        registers: [deps.metrics.registry],
      })
    : undefined;
  const tick = (): void => {
    timer = undefined;
    running = scanDuplicatesOnce(deps.orm, { logger: deps.logger, ...(parkedCounter ? { parkedCounter } : {}) })
      .then(
        (round) => (round.records > 0 ? 0 : idleMs),
        (err: unknown) => {
          deps.logger.error({ err }, 'duplicate scan failed');
          return idleMs;
        },
      )
      .then((wait) => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, wait).unref();
      });
  };
  timer = setTimeout(tick, 0).unref();
  return {
    name: 'duplicate-scan',
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
