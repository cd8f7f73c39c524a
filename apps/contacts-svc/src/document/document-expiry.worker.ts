import { newId, recordEvents, runWithContext, type BackgroundWorker, type Logger, type Orm } from '@crm/platform';
import { z } from 'zod';
import { dueThreshold, daysBetween } from './document.rules.ts';
import { DOCUMENT_COLUMNS, EVENT_SOURCE, expiringEvent, fromRaw, LIVE_PARENT, type RawDocument } from './document.service.ts';

/**
 * Environment of the documents' expiry check: `DOCUMENT_EXPIRY_CHECK_INTERVAL_MS` (default one
 * hour; thresholds are whole days, so hourly is timely enough; `0` turns the check off in this
 * process — tests drive {@link DocumentExpiryCheck.runOnce} instead).
 */
export const documentEnv = {
  DOCUMENT_EXPIRY_CHECK_INTERVAL_MS: z.coerce.number().int().min(0).default(3_600_000),
};

/** Documents claimed per transaction of a check. */
const BATCH = 200;
/** Upper bound of batches per check, so one check always ends (the next picks up the rest). */
const MAX_BATCHES = 500;
/** `userId` of the request context the check's events are recorded under (no user acts). */
export const EXPIRY_CHECK_ACTOR = 'system:document-expiry-check';

/**
 * The scheduled expiry check (issue 8): emits `crm.contacts.document.expiring` once per document,
 * threshold (30, 7, 0 days before `expiresOn`, UTC dates) and expiry date — the nearest threshold
 * reached, so a document uploaded 5 days before it expires gets the 7-day notice only, and an
 * expired one the 0-day notice once; a threshold is skipped when a notice at or below it already
 * exists for that date (never a 7-day notice after the 0-day one). "Today" is the UTC date by the
 * database's clock, one clock for every replica. Safe with any number of replicas checking at
 * once: documents are taken `for no key update skip locked` (each replica checks others), and
 * each notice is claimed by inserting its row into `document_expiry_notice` (primary key
 * document, threshold, date; `on conflict do nothing`) in the transaction that stores the event
 * in the outbox. With the 0-day notice the document is marked done for its date
 * (`expiry_notices_done_for`): the check's index leaves it out from then on, so the scan covers
 * only documents with a notice still to come. A changed `expiresOn` is a new date: its thresholds
 * fire again. Documents whose company or contact is deleted are skipped (as they are hidden).
 */
export class DocumentExpiryCheck {
  readonly #orm: Orm;

  constructor(orm: Orm) {
    this.#orm = orm;
  }

  /**
   * Checks every organization's documents as of `now` (default: the database's clock; tests pin
   * it) and returns how many notices this call emitted. Rows locked by a concurrent change or
   * check are skipped (`skip locked`) and picked up by the next check.
   */
  async runOnce(now?: Date): Promise<number> {
    const pinned = now ?? null;
    const [clock] = await this.#orm.em
      .fork()
      .execute<{ today: string }[]>(`select (coalesce(?::timestamptz, now()) at time zone 'utc')::date::text as today`, [pinned]);
    const today = clock!.today;
    let emitted = 0;
    for (let batch = 0; batch < MAX_BATCHES; batch++) {
      const claimed = await this.#orm.em.fork().transactional(async (em) => {
        // the nearest threshold reached, in SQL as dueThreshold() computes it
        const due = `case when d.expires_on <= ?::date then 0 when d.expires_on <= ?::date + 7 then 7 else 30 end`;
        const rows = await em.execute<RawDocument[]>(
          `select ${DOCUMENT_COLUMNS} from contacts.document d
           where d.expires_on is not null and d.expiry_notices_done_for is distinct from d.expires_on
             and d.expires_on <= ?::date + 30 and ${LIVE_PARENT}
             and not exists (select 1 from contacts.document_expiry_notice n
                             where n.document_id = d.id and n.expires_on = d.expires_on and n.threshold_days <= ${due})
           order by d.expires_on, d.id limit ? for no key update of d skip locked`,
          [today, today, today, BATCH],
        );
        if (rows.length === 0) return undefined;
        const documents = rows.map(fromRaw);
        const notices = documents.map((d) => ({ document: d, threshold: dueThreshold(d.expiresOn!, today)! }));
        const inserted = await em.execute<{ document_id: string }[]>(
          `insert into contacts.document_expiry_notice (document_id, threshold_days, expires_on, organization_id, notified_at)
           select n.document_id, n.threshold_days, n.expires_on, n.organization_id, coalesce(?::timestamptz, now())
           from jsonb_to_recordset(?::jsonb) as n (document_id uuid, threshold_days integer, expires_on date, organization_id uuid)
           on conflict do nothing returning document_id`,
          [
            pinned,
            JSON.stringify(
              notices.map((n) => ({
                document_id: n.document.id,
                threshold_days: n.threshold,
                expires_on: n.document.expiresOn,
                organization_id: n.document.organizationId,
              })),
            ),
          ],
        );
        const done = notices.filter((n) => n.threshold === 0).map((n) => n.document.id);
        if (done.length) {
          await em.execute('update contacts.document set expiry_notices_done_for = expires_on where id = any(?::uuid[])', [`{${done.join(',')}}`]);
        }
        const won = new Set(inserted.map((r) => r.document_id));
        for (const { document, threshold } of notices) {
          if (!won.has(document.id)) continue;
          const ctx = { organizationId: document.organizationId, userId: EXPIRY_CHECK_ACTOR, roles: [], requestId: newId() };
          runWithContext(ctx, () => recordEvents(em, EVENT_SOURCE, [expiringEvent(document, threshold, daysBetween(today, document.expiresOn!))]));
        }
        return won.size;
      });
      if (claimed === undefined) break;
      emitted += claimed;
    }
    return emitted;
  }
}

/**
 * Starts the check in this process: once right away, then every `intervalMs` after the previous
 * check ended (none with `intervalMs` 0). A failed check is logged and retried at the next tick.
 * `stop()` cancels the next tick and waits for a running check.
 */
export function startDocumentExpiryWorker(deps: { orm: Orm; logger: Logger }, intervalMs: number): BackgroundWorker {
  const check = new DocumentExpiryCheck(deps.orm);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = (): void => {
    timer = undefined;
    running = check
      .runOnce()
      .then(
        (emitted) => {
          if (emitted > 0) deps.logger.info({ emitted }, 'document expiry notices emitted');
        },
        (err: unknown) => deps.logger.error({ err }, 'document expiry check failed'),
      )
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, intervalMs).unref();
      });
  };
  if (intervalMs > 0) timer = setTimeout(tick, 0).unref();
  return {
    name: 'document-expiry-check',
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
