import { EXAMPLE_RECORD_ID } from '@crm/contracts';
import { DomainError, type Role } from '@crm/platform';
import { z } from 'zod';
import { problemSchema, schemaOf } from '../openapi/openapi.ts';
import type { CrudSpec } from './crud.router.ts';
import { expectedVersion } from './etag.ts';
import { problem, problemOf, validationProblem, type Problem } from './problem.ts';
import { defineRoute, json, jsonBody, type BodySpec, type Route } from './route.ts';

/** Most operations in one batch request. */
export const MAX_BATCH_OPERATIONS = 200;

/**
 * Operations of one batch in flight at once: enough to hide the round trips, few enough that one
 * batch does not take a backend's whole pool (each operation is one service call, one transaction).
 */
export const BATCH_CONCURRENCY = 8;

/** The refusal of a PATCH body naming no field, as the single PATCH answers it. */
const EMPTY_PATCH = 'name at least one field to change';

/** One operation as sent; its `body` is checked per operation, with the single endpoints' schemas. */
export type BatchOperation =
  | { op: 'create'; body?: unknown }
  | { op: 'update'; id: string; body?: unknown; ifMatch?: string | undefined }
  | { op: 'delete'; id: string; ifMatch?: string | undefined };

/**
 * The outcome of one operation: the status the single endpoint would answer (201 create, 200
 * update, 204 delete, or its problem status), with the record (201, 200) or the problem (≥ 400).
 */
export interface BatchResult<R> {
  status: number;
  resource?: R;
  problem?: Problem;
}

/** The documented example: two deletes, the second with a stale If-Match (a mixed batch needs the records' own examples). */
const EXAMPLE = {
  request: {
    operations: [
      { op: 'delete', id: EXAMPLE_RECORD_ID, ifMatch: '"3"' },
      { op: 'delete', id: '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f11', ifMatch: '"1"' },
    ],
  },
  response: (collection: string): { results: BatchResult<never>[] } => ({
    results: [
      { status: 204 },
      {
        status: 412,
        problem: problemOf(
          new DomainError('precondition_failed', 'VERSION_MISMATCH', 'record is at version 2, not 1'),
          `${collection}/0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f11`,
        ),
      },
    ],
  }),
};

/** The envelope the gateway parses: structure only (400 for the whole request); item bodies are checked per item. */
const envelope = z.strictObject({
  operations: z
    .array(
      z.discriminatedUnion('op', [
        z.strictObject({ op: z.literal('create'), body: z.unknown() }),
        z.strictObject({ op: z.literal('update'), id: z.string(), ifMatch: z.string().optional(), body: z.unknown() }),
        z.strictObject({ op: z.literal('delete'), id: z.string(), ifMatch: z.string().optional() }),
      ]),
    )
    .min(1)
    .max(MAX_BATCH_OPERATIONS),
});

/**
 * Runs `work` over `items` with at most `limit` in flight; results in input order. `work` must not
 * reject (each item's failure is its own result).
 */
export async function mapBounded<T, U>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<U>): Promise<U[]> {
  const out = new Array<U>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The outcome of one operation through `spec`, exactly as its single endpoint decides it: body
 * (400 naming the fields, relative to the operation's body) → If-Match (a malformed tag 412) → the
 * service call (its domain error → its problem). Never rejects: an unexpected error is a 500 result
 * (reported to `onError`), so the other operations still get theirs. `collection` is the
 * collection's absolute path (`/api/v1/companies`), for each problem's `instance`.
 */
export async function runOperation<R extends { id: string; version: number }, C, P, Q>(
  spec: CrudSpec<R, C, P, Q>,
  collection: string,
  operation: BatchOperation,
  onError: (error: unknown) => void = () => undefined,
): Promise<BatchResult<R>> {
  const instance = operation.op === 'create' ? collection : `${collection}/${encodeURIComponent(operation.id)}`;
  try {
    switch (operation.op) {
      case 'create': {
        const body = spec.schemas.create.safeParse(operation.body);
        if (!body.success) return failed(validationProblem(body.error, 'body'), instance);
        return { status: 201, resource: await spec.create(body.data) };
      }
      case 'update': {
        const body = spec.schemas.patch.safeParse(operation.body);
        if (!body.success) return failed(validationProblem(body.error, 'body'), instance);
        const fields = Object.keys(body.data as object);
        if (!fields.length) {
          const empty = new z.ZodError([{ code: 'custom', path: [], message: EMPTY_PATCH, input: body.data }]);
          return failed(validationProblem(empty, 'body'), instance);
        }
        return { status: 200, resource: await spec.update(operation.id, body.data, fields, ifMatchVersion(operation.ifMatch)) };
      }
      case 'delete':
        await spec.remove(operation.id, ifMatchVersion(operation.ifMatch));
        return { status: 204 };
      default:
        return assertNever(operation);
    }
  } catch (error) {
    if (error instanceof DomainError) return failed(problemOf(error, instance));
    onError(error);
    return failed(problem(500, 'internal', 'Internal error'), instance);
  }
}

function failed(p: Problem, instance?: string): BatchResult<never> {
  return { status: p.status, problem: instance && !p.instance ? { ...p, instance } : p };
}

function assertNever(value: never): never {
  throw new Error(`unknown batch operation ${JSON.stringify(value)}`);
}

/** An operation's `ifMatch` as the single endpoints read the `If-Match` header: `"N"` → N, `*` or none → no check, else 412. */
function ifMatchVersion(ifMatch: string | undefined): string | undefined {
  const v = expectedVersion(ifMatch);
  if (v === null) throw new DomainError('precondition_failed', 'VERSION_MISMATCH', 'If-Match does not match the current ETag');
  return v === undefined ? undefined : String(v);
}

/**
 * `POST /api/v1/<plural>:batch`: up to {@link MAX_BATCH_OPERATIONS} creates, updates and deletes
 * of one resource in one request. Each operation is its own call of the same service RPC as its
 * single endpoint — its own transaction and events — run {@link BATCH_CONCURRENCY} at a time, so
 * one bad operation never half-writes another, and each gets the status and problem its single
 * endpoint would answer (validation 400, 403 for a rep's foreign record, 404, 409, 412, 422, 503).
 * The answer is 200 `{ results }` in request order. Whole-request refusals: role (403, the same
 * `writeRoles` as the single writes), a body that is no `{ operations: [...] }` of 1..200 known
 * operations (400). Not atomic, and without Idempotency-Key: a client retries the failed items.
 * The rate limit counts the batch as one request.
 */
export function batchRoute<R extends { id: string; version: number }, C, P, Q>(
  spec: CrudSpec<R, C, P, Q>,
  options: { operationId: string; schemaId: string; writeRoles: readonly Role[]; onError?: (error: unknown) => void },
): Route {
  const collection = `/api/v1/${spec.plural}`;
  const id = z.string().meta({ format: 'uuid', description: 'record id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] });
  const ifMatch = z
    .string()
    .optional()
    .meta({ description: 'ETag from a previous read, as If-Match of the single endpoint (stale → 412)', examples: ['"3"'] });
  // what clients see: the single endpoints' own body schemas inside each operation
  const documented = z
    .strictObject({
      operations: z
        .array(
          z.discriminatedUnion('op', [
            z.strictObject({ op: z.literal('create'), body: spec.schemas.create }),
            z.strictObject({ op: z.literal('update'), id, ifMatch, body: spec.schemas.patch }),
            z.strictObject({ op: z.literal('delete'), id, ifMatch }),
          ]),
        )
        .min(1)
        .max(MAX_BATCH_OPERATIONS),
    })
    .meta({ id: `${options.schemaId}Batch`, description: `creates, updates and deletes of ${spec.plural}, each run on its own` });
  const body: BodySpec<z.infer<typeof envelope>> = {
    ...jsonBody(envelope),
    requestBody: { required: true, content: { 'application/json': { schema: schemaOf(documented), example: EXAMPLE.request } } },
  };
  const results = z
    .object({
      results: z.array(
        z.object({
          status: z.int().meta({ description: 'the status the single endpoint would answer: 201, 200, 204 or a problem status', examples: [201] }),
          resource: spec.schemas.resource.optional().meta({ description: `the ${spec.singular} as served (201, 200)` }),
          problem: problemSchema.optional().meta({ description: 'why the operation failed (status ≥ 400)' }),
        }),
      ),
    })
    .meta({ id: `${options.schemaId}BatchResults`, description: 'one result per operation, in request order' });
  return defineRoute({
    method: 'post',
    // the colon is literal (Google AIP-136 custom method style), escaped for Express
    path: `/${spec.plural}\\:batch`,
    operationId: options.operationId,
    summary: `Create, change and delete ${spec.plural} in one request`,
    description:
      `Up to ${MAX_BATCH_OPERATIONS} operations, each run on its own (its own transaction and events, as the single endpoint; ${BATCH_CONCURRENCY} at a time). ` +
      'Answers 200 with one result per operation in request order: the status and record or problem the single endpoint would answer. ' +
      'Not atomic: a failed operation changes nothing, the others still apply. Not covered by Idempotency-Key: retry only the failed operations.',
    tag: spec.plural,
    roles: options.writeRoles,
    body,
    response: json(results, { description: 'one result per operation', example: EXAMPLE.response(collection) }),
    handler: async ({ body: { operations } }) => ({
      results: await mapBounded(operations, BATCH_CONCURRENCY, (operation) => runOperation(spec, collection, operation, options.onError)),
    }),
  });
}
