import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import pg from 'pg';
import type { RequestContext } from '@crm/platform';
import { problem, sendProblem } from './problem.ts';

/** How long a key is remembered (Stripe and the IETF idempotency-key draft suggest ≥ 24 h). */
const RETENTION_HOURS = 24;

/**
 * How long a first request may hold its key "in progress". A gateway that died or froze mid-request
 * never releases its key; after this lease a retry takes the key over, and the owning service —
 * which recorded the key with its write — replays what the first request did (or does it now).
 */
export const IN_PROGRESS_LEASE_SECONDS = 60;

/**
 * Postgres-backed `Idempotency-Key` store (table `gateway.idempotency_key`, created by the
 * gateway's migrations at boot). A POST with a key runs once per (organization, user, key): a retry
 * with the same body gets the stored status, headers and body (`Idempotent-Replayed: true`); the
 * same key with a different body is 422; a retry while the first is still running is 409 (for at
 * most {@link IN_PROGRESS_LEASE_SECONDS}). Failed (5xx) attempts release the key so the client may
 * retry: the key also travels to the owning service, which records it with the write in one
 * transaction, so the retry replays instead of writing twice. Follows
 * draft-ietf-httpapi-idempotency-key-header.
 */
export class IdempotencyStore {
  readonly #pool: pg.Pool;

  constructor(databaseUrl: string) {
    this.#pool = new pg.Pool({ connectionString: databaseUrl, max: 5 });
    // an idle client whose server went away emits 'error' on the pool; without a listener the process
    // would exit on a Postgres restart. The pool drops that client and the next query reconnects.
    this.#pool.on('error', () => undefined);
  }

  /** True when the database answers. */
  async ping(): Promise<boolean> {
    await this.#pool.query('select 1');
    return true;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /** Middleware for POST routes. Keys: 1..255 printable ASCII characters. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const key = req.get('idempotency-key');
      if (key === undefined) return next();
      if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
        return sendProblem(
          res,
          problem(400, 'validation-error', 'Invalid Idempotency-Key', {
            errors: [{ field: 'Idempotency-Key', message: '1 to 255 printable ASCII characters' }],
          }),
        );
      }
      const ctx = res.locals['ctx'] as RequestContext;
      // the owning service records the key with its write: a retry has one effect whatever failed
      ctx.idempotencyKey = key;
      const hash = createHash('sha256')
        .update(`${req.method} ${req.originalUrl}\n${JSON.stringify(req.body ?? null)}`)
        .digest('hex');
      const id = [ctx.organizationId, ctx.userId, key];
      void this.#begin(id, hash, res, next).catch(next);
    };
  }

  async #begin(id: string[], hash: string, res: Parameters<RequestHandler>[1], next: (err?: unknown) => void): Promise<void> {
    if (Math.random() < 0.01)
      void this.#pool.query(`delete from gateway.idempotency_key where created_at < now() - interval '${RETENTION_HOURS} hours'`).catch(() => undefined);
    const inserted = await this.#pool.query(
      'insert into gateway.idempotency_key (organization_id, user_id, key, request_hash) values ($1, $2, $3, $4) on conflict do nothing',
      [...id, hash],
    );
    if (inserted.rowCount === 0) {
      const { rows } = await this.#pool.query<{
        request_hash: string;
        response_status: number | null;
        response_headers: Record<string, string> | null;
        response_body: unknown;
      }>(
        'select request_hash, response_status, response_headers, response_body from gateway.idempotency_key where organization_id = $1 and user_id = $2 and key = $3',
        id,
      );
      const row = rows[0];
      if (!row) return this.#begin(id, hash, res, next); // expired between the two statements
      if (row.request_hash !== hash)
        return sendProblem(
          res,
          problem(422, 'idempotency-key-reused', 'Idempotency-Key reused', {
            detail: 'this key was used with a different request',
            code: 'IDEMPOTENCY_KEY_REUSED', // the same code the owning service answers with
          }),
        );
      if (row.response_status === null && (await this.#takeOverAbandoned(id))) return this.#begin(id, hash, res, next);
      if (row.response_status === null)
        return sendProblem(
          res,
          problem(409, 'idempotency-request-in-progress', 'Request in progress', { detail: 'the first request with this key has not finished' }),
        );
      res
        .status(row.response_status)
        .set({ ...row.response_headers, 'Idempotent-Replayed': 'true' })
        .json(row.response_body);
      return;
    }
    // first attempt: record the response before it leaves, so a retry never sees "in progress" after a reply
    const json = res.json.bind(res);
    /** The key's row was updated with the response (or deleted): nothing left to release on close. */
    let settled = false;
    res.json = (body: unknown) => {
      const status = res.statusCode;
      const keep = status < 500;
      const headers: Record<string, string> = {};
      for (const h of ['location', 'etag', 'content-type']) {
        const v = res.getHeader(h);
        if (typeof v === 'string') headers[h] = v;
      }
      const write = keep
        ? this.#pool.query(
            'update gateway.idempotency_key set response_status = $4, response_headers = $5, response_body = $6 where organization_id = $1 and user_id = $2 and key = $3',
            [...id, status, headers, JSON.stringify(body)],
          )
        : this.#pool.query('delete from gateway.idempotency_key where organization_id = $1 and user_id = $2 and key = $3', id);
      write.then(
        () => {
          settled = true;
          json(body);
        },
        () => json(body),
      );
      return res;
    };
    // anything that did not store a response (problems, aborted requests) releases the key
    res.on('close', () => {
      if (settled) return; // the common case: one statement fewer per request
      void this.#pool
        .query('delete from gateway.idempotency_key where organization_id = $1 and user_id = $2 and key = $3 and response_status is null', id)
        .catch(() => undefined);
    });
    next();
  }

  /** Drops the key's in-progress row when its lease ran out (its request died or froze); true when it did. */
  async #takeOverAbandoned(id: string[]): Promise<boolean> {
    const taken = await this.#pool.query(
      `delete from gateway.idempotency_key where organization_id = $1 and user_id = $2 and key = $3 and response_status is null
         and created_at < now() - make_interval(secs => $4)`,
      [...id, IN_PROGRESS_LEASE_SECONDS],
    );
    return (taken.rowCount ?? 0) > 0;
  }
}
