import { Router, type Request, type Response } from 'express';
import { DomainError, type Role } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, requireRole, WRITE_ROLES } from '../auth/tenant.ts';
import { etagOf, expectedVersion } from './etag.ts';
import type { IdempotencyStore } from './idempotency.ts';
import { sendProblem, validationProblem } from './problem.ts';

/** Query of every list endpoint: `limit` 1..200 (default 50), opaque `cursor`. */
export const listQueryBase = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).optional(),
  cursor: z.string().max(500).optional(),
});

/** `{ data: [...], nextCursor }` — the list envelope of the REST conventions. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * One REST resource backed by a gRPC service. `R` is the JSON representation (with `id` and
 * `version`), `C` the create body, `P` the patch body, `Q` the list query.
 */
export interface CrudSpec<R extends { id: string; version: number }, C, P, Q> {
  /** Plural path segment, e.g. `companies`. */
  plural: string;
  /** Singular name for messages and OpenAPI, e.g. `company`. */
  singular: string;
  schemas: { resource: z.ZodType<R>; create: z.ZodType<C>; patch: z.ZodType<P>; query: z.ZodType<Q> };
  create(body: C): Promise<R>;
  get(id: string): Promise<R>;
  list(query: Q): Promise<Page<R>>;
  /** `fields` are the patch body's keys (the update mask); `expectedVersion` from If-Match, as proto int64 (string). */
  update(id: string, body: P, fields: string[], expectedVersion: string | undefined): Promise<R>;
  remove(id: string, expectedVersion: string | undefined): Promise<void>;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: 'body' | 'query', res: Response): T | undefined {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  sendProblem(res, validationProblem(result.error, where));
  return undefined;
}

/** The If-Match version as proto int64 (string); undefined when there is no precondition. */
function ifMatch(req: Request): string | undefined {
  const v = expectedVersion(req.get('if-match') ?? undefined);
  if (v === null) throw new DomainError('precondition_failed', 'VERSION_MISMATCH', 'If-Match does not match the current ETag');
  return v === undefined ? undefined : String(v);
}

/**
 * Express router for a {@link CrudSpec} under `/api/v1/<plural>`: strict JSON bodies (unknown
 * fields → 400), `Idempotency-Key` on POST, `ETag` on reads and writes, `If-Match` on PATCH and
 * DELETE (stale → 412), read roles for GET and write roles for the rest.
 */
export function crudRouter<R extends { id: string; version: number }, C, P, Q>(
  spec: CrudSpec<R, C, P, Q>,
  idempotency: IdempotencyStore,
  writeRoles: Role[] = WRITE_ROLES,
): Router {
  const router = Router();
  const base = `/api/v1/${spec.plural}`;

  router.get('/', requireRole(...READ_ROLES), async (req, res) => {
    const query = parse(spec.schemas.query, req.query, 'query', res);
    if (query === undefined) return;
    res.json(await spec.list(query));
  });

  router.post('/', requireRole(...writeRoles), idempotency.middleware(), async (req, res) => {
    const body = parse(spec.schemas.create, req.body, 'body', res);
    if (body === undefined) return;
    const created = await spec.create(body);
    res.status(201).location(`${base}/${created.id}`).set('ETag', etagOf(created.version)).json(created);
  });

  router.get('/:id', requireRole(...READ_ROLES), async (req, res) => {
    const found = await spec.get(String(req.params['id']));
    res.set('ETag', etagOf(found.version)).json(found);
  });

  router.patch('/:id', requireRole(...writeRoles), async (req, res) => {
    const body = parse(spec.schemas.patch, req.body, 'body', res);
    if (body === undefined) return;
    const fields = Object.keys(body as object);
    if (fields.length === 0)
      return sendProblem(res, validationProblem(new z.ZodError([{ code: 'custom', path: [], message: 'name at least one field to change', input: body }])));
    const updated = await spec.update(String(req.params['id']), body, fields, ifMatch(req));
    res.set('ETag', etagOf(updated.version)).json(updated);
  });

  router.delete('/:id', requireRole(...writeRoles), async (req, res) => {
    await spec.remove(String(req.params['id']), ifMatch(req));
    res.status(204).end();
  });

  return router;
}
