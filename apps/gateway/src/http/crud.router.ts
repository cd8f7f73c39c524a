import { EXAMPLE_RECORD_ID } from '@crm/contracts';
import type { Role } from '@crm/platform';
import { z } from 'zod';
import { READ_ROLES, WRITE_ROLES } from '../auth/tenant.ts';
import { batchRoute } from './batch.ts';
import type { IdempotencyStore } from './idempotency.ts';
import { defineRoute, json, jsonBody, noContent, type Route } from './route.ts';

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

/** The path parameter of a record; not checked as a UUID here: the services answer 404 for a malformed id. */
const recordParams = z.strictObject({ id: z.string().meta({ format: 'uuid', description: 'record id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] }) });

/** `line-items` → `LineItems` (operationIds). */
function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/**
 * The six routes of a {@link CrudSpec} under `/api/v1/<plural>` (operationIds `list<Plural>`,
 * `create<Singular>`, `get…`, `update…`, `delete…`, and `batch<Plural>` for
 * `POST /api/v1/<plural>:batch`, see batch.ts): strict JSON bodies (unknown fields → 400),
 * `Idempotency-Key` on POST, `ETag` on reads and writes, `Location` on create, `If-Match` on
 * PATCH and DELETE (stale → 412), a PATCH naming no field → 400, read roles for GET and
 * `writeRoles` for the rest.
 */
export function crudRoutes<R extends { id: string; version: number }, C, P, Q>(
  spec: CrudSpec<R, C, P, Q>,
  idempotency: IdempotencyStore,
  writeRoles: readonly Role[] = WRITE_ROLES,
  /** Errors of batch items that are not domain errors (each answered as that item's 500): logged by the caller. */
  onBatchError?: (error: unknown) => void,
): Route[] {
  const path = `/${spec.plural}`;
  const tag = spec.plural;
  const one = pascal(spec.singular);
  const version = (r: R): number => r.version;
  const page = z.object({
    data: z.array(spec.schemas.resource),
    nextCursor: z
      .string()
      .nullable()
      .meta({ description: 'pass as cursor for the next page; null on the last', examples: ['MDE5M2E1YjItN2M0ZQ'] }),
  });
  return [
    defineRoute({
      method: 'get',
      path,
      operationId: `list${pascal(spec.plural)}`,
      summary: `List ${spec.plural}`,
      description: 'Keyset-paged in creation order (at most 200 per page); filters match exactly. Only the caller’s organization’s records.',
      tag,
      roles: READ_ROLES,
      query: spec.schemas.query,
      response: json(page, { description: 'one page; pass nextCursor as cursor for the next' }),
      handler: ({ query }) => spec.list(query),
    }),
    defineRoute({
      method: 'post',
      path,
      operationId: `create${one}`,
      summary: `Create a ${spec.singular}`,
      description: 'Answers 201 with Location and ETag. Unknown fields are refused (400). Retry-safe with Idempotency-Key.',
      tag,
      roles: writeRoles,
      idempotency,
      body: spec.schemas.create,
      response: json(spec.schemas.resource, { status: 201, etag: version, location: (r) => `/api/v1${path}/${r.id}` }),
      problems: { '409': 'a unique field is taken', '422': 'business rule violated (e.g. a reference to no record of the organization)' },
      handler: ({ body }) => spec.create(body),
    }),
    defineRoute({
      method: 'get',
      path: `${path}/:id`,
      operationId: `get${one}`,
      summary: `Get a ${spec.singular}`,
      description: 'The ETag is the version; send it back as If-Match when changing the record. Another organization’s record is 404.',
      tag,
      roles: READ_ROLES,
      params: recordParams,
      response: json(spec.schemas.resource, { description: 'found', etag: version }),
      problems: { '404': 'not found (or another organization’s)' },
      handler: ({ params }) => spec.get(params.id),
    }),
    defineRoute({
      method: 'patch',
      path: `${path}/:id`,
      operationId: `update${one}`,
      summary: `Change a ${spec.singular}`,
      description: 'Changes the fields sent, nothing else (null clears a field). With If-Match only if nobody changed it since (else 412).',
      tag,
      roles: writeRoles,
      params: recordParams,
      // checked with the body, before If-Match, as a body problem
      body: jsonBody(spec.schemas.patch, (body) => (Object.keys(body as object).length ? undefined : 'name at least one field to change')),
      ifMatch: true,
      response: json(spec.schemas.resource, { description: 'changed', etag: version }),
      problems: { '404': 'not found (or another organization’s)', '409': 'a unique field is taken', '422': 'business rule violated' },
      handler: ({ params, body, expectedVersion }) => spec.update(params.id, body, Object.keys(body as object), expectedVersion),
    }),
    defineRoute({
      method: 'delete',
      path: `${path}/:id`,
      operationId: `delete${one}`,
      summary: `Delete a ${spec.singular} (soft delete)`,
      description: 'With If-Match only if nobody changed it since (else 412).',
      tag,
      roles: writeRoles,
      params: recordParams,
      ifMatch: true,
      response: noContent('deleted'),
      problems: { '404': 'not found (or another organization’s)', '422': 'business rule violated (e.g. it still has dependents)' },
      handler: ({ params, expectedVersion }) => spec.remove(params.id, expectedVersion),
    }),
    batchRoute(spec, { operationId: `batch${pascal(spec.plural)}`, schemaId: one, writeRoles, ...(onBatchError ? { onError: onBatchError } : {}) }),
  ];
}
