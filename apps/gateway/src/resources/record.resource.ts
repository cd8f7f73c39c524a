import { makeGenericClientConstructor, type Client } from '@grpc/grpc-js';
import {
  EXAMPLE_RECORD_ID,
  EXAMPLE_USER_ID,
  fieldExample,
  fieldOutputSchema,
  fieldSchema,
  messageValues,
  pascalCase,
  recordMethods,
  snakeCase,
  timeFields,
  timeRangeParams,
  toProto,
  valuesMessage,
  type FieldSpec,
  type RecordDeclaration,
} from '@crm/contracts';
import { callUnary, type UnaryMethod } from '@crm/platform';
import { z } from 'zod';
import type { BackendContext } from '../backends.ts';
import { crudRoutes, listQueryBase, type CrudSpec } from '../http/crud.router.ts';
import type { Route } from '../http/route.ts';

/** A record as served: `{ id, …fields, createdBy, createdAt, updatedAt, version }` (camelCase, null = absent). */
export type RecordJson = { id: string; version: number } & Record<string, unknown>;
type Body = Record<string, unknown>;

/**
 * The REST schemas of a record, derived from its field table with the kit's rules (the same the
 * service normalises with): `<Name>Create` (required fields required, unknown fields refused),
 * `<Name>Patch` (every field optional, null clears), `<Name>` (the representation) and the list
 * query (`limit`, `cursor`, `q` when fields are searchable, one exact-match parameter per `filter`
 * field). Each field carries an example derived from its kind ({@link fieldExample}); the patch
 * body's example changes two fields. Built once per declaration: the schemas carry OpenAPI
 * component ids, and two instances under one id (another route reusing `<Name>`, a second gateway
 * in the process) would make zod refuse the document ("Duplicate schema id").
 */
export function recordSchemas(record: RecordDeclaration): ReturnType<typeof buildRecordSchemas> {
  let schemas = builtSchemas.get(record);
  if (!schemas) builtSchemas.set(record, (schemas = buildRecordSchemas(record)));
  return schemas;
}

const builtSchemas = new WeakMap<RecordDeclaration, ReturnType<typeof buildRecordSchemas>>();

function buildRecordSchemas(record: RecordDeclaration) {
  const one = pascalCase(record.name);
  const fields = Object.entries(record.fields);
  const example = (key: string, spec: FieldSpec, schema: z.ZodType) => schema.meta({ examples: [fieldExample(key, spec)] });
  const input = (optional: (spec: FieldSpec) => boolean) =>
    Object.fromEntries(
      fields.map(([key, spec]) => {
        const schema = example(key, spec, fieldSchema(spec));
        return [key, optional(spec) ? schema.optional() : schema];
      }),
    );
  // plain fields: neither unique (a 409 waiting to happen), nor references, nor the owner (rights)
  const patchExample = Object.fromEntries(
    fields
      .filter(([, spec]) => !spec.unique && spec.kind !== 'ref' && spec.kind !== 'owner')
      .slice(0, 2)
      .map(([key, spec]) => [key, fieldExample(key, spec)]),
  );
  const at = (description: string) => z.iso.datetime().meta({ description, examples: ['2026-11-21T09:30:00.000Z'] });
  return {
    create: z.strictObject(input((spec) => !(spec.kind === 'text' && spec.required))).meta({ id: `${one}Create`, description: `a new ${record.name}` }),
    patch: z.strictObject(input(() => true)).meta({ id: `${one}Patch`, description: 'fields to change; null clears', examples: [patchExample] }),
    resource: z
      .object({
        id: z.uuid().meta({ description: 'record id (UUIDv7)', examples: [EXAMPLE_RECORD_ID] }),
        ...Object.fromEntries(fields.map(([key, spec]) => [key, example(key, spec, fieldOutputSchema(spec))])),
        createdBy: z.string().meta({ description: 'Keycloak user id of the creator', examples: [EXAMPLE_USER_ID] }),
        createdAt: at('when it was created'),
        updatedAt: at('when it was last changed'),
        version: z
          .int()
          .min(1)
          .meta({ description: 'optimistic-locking version; the ETag is its quoted value', examples: [3] }),
      })
      .meta({ id: one, description: `a ${record.name} as served` }),
    query: listQuery(record),
  };
}

/**
 * The list query of a record: `limit`, `cursor`, `q` (search fields), one exact-match parameter per
 * `filter` field (an address: `<key>City`, `<key>Country`), `sort` (`<name>` or `-<name>` of the
 * declaration's sorts), `tags` (comma-separated ids) with `tagsMatch` any|all, time ranges
 * `<time>After` (inclusive) / `<time>Before` (exclusive) for createdAt, updatedAt and each
 * timestamp field, and — for records with `customFields` — `cf.<key>=<value>` conditions on custom
 * fields (checked by the service against the definitions: 400 naming `cf.<key>`).
 */
function listQuery(record: RecordDeclaration): z.ZodType<Record<string, unknown>> {
  const fields = Object.entries(record.fields);
  const searched = fields.filter(([, spec]) => spec.search).map(([key]) => key);
  const sorts = Object.keys(record.sorts ?? {});
  const times = timeFields(record);
  const instant = (what: string) => z.iso.datetime({ offset: true }).optional().describe(what);
  const shape = listQueryBase.extend({
    ...(searched.length
      ? {
          q: z
            .string()
            .max(200)
            .optional()
            .describe(`case- and accent-insensitive substring of ${searched.join(', ')}`),
        }
      : {}),
    ...Object.fromEntries(
      fields
        .filter(([, spec]) => spec.filter)
        .flatMap(([key, spec]) =>
          spec.kind === 'address'
            ? [
                [`${key}City`, z.string().max(100).optional().describe(`${key} city, case-insensitive`)],
                [`${key}Country`, z.string().max(100).optional().describe(`${key} country code`)],
              ]
            : [[key, filterSchema(spec)]],
        ),
    ),
    ...(sorts.length
      ? {
          sort: z
            .enum([...sorts, ...sorts.map((n) => `-${n}`)] as [string, ...string[]])
            .optional()
            .describe('order of the list; `-` for descending (default: creation order)'),
        }
      : {}),
    ...(record.fields['tags']?.kind === 'tags'
      ? {
          tags: z.string().max(4000).optional().describe('comma-separated tag ids: records carrying any of them (all with tagsMatch=all)'),
          tagsMatch: z.enum(['any', 'all']).optional(),
        }
      : {}),
    ...Object.fromEntries(
      times.flatMap((key) => [
        [timeRangeParams(key).after, instant(`only records whose ${key} is at or after this instant`)],
        [timeRangeParams(key).before, instant(`only records whose ${key} is before this instant`)],
      ]),
    ),
  });
  if (record.fields['customFields']?.kind !== 'json') return shape;
  // cf.<key>: one parameter per custom field, so not enumerable in the schema
  return shape.catchall(z.string().max(1000)).superRefine((query, ctx) => {
    for (const key of Object.keys(query)) {
      if (!(key in shape.shape) && !/^cf\.[a-z][a-z0-9_]{0,62}$/.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'unknown parameter' });
    }
  });
}

/** The list request fields of the kit's list conditions (record-grpc.ts `listConditions`) from a validated list query. */
function listRequest(record: RecordDeclaration, q: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof q['sort'] === 'string') out['orderBy'] = q['sort'].startsWith('-') ? `${snakeCase(q['sort'].slice(1))} desc` : snakeCase(q['sort']);
  if (typeof q['tags'] === 'string')
    out['tags'] = q['tags']
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
  if (q['tagsMatch'] === 'all') out['tagsMatchAll'] = true;
  const customFields = Object.fromEntries(
    Object.entries(q)
      .filter(([k, v]) => k.startsWith('cf.') && typeof v === 'string')
      .map(([k, v]) => [k.slice(3), v]),
  );
  if (Object.keys(customFields).length) out['customFields'] = customFields;
  for (const key of timeFields(record)) {
    for (const param of Object.values(timeRangeParams(key))) if (typeof q[param] === 'string') out[param] = new Date(q[param]);
  }
  for (const [key, spec] of Object.entries(record.fields)) {
    if (spec.kind !== 'address' || !spec.filter) continue;
    // always set: ts-proto's encoder writes an absent string field as "undefined"
    for (const part of ['City', 'Country']) out[`${key}${part}`] = typeof q[`${key}${part}`] === 'string' ? q[`${key}${part}`] : '';
  }
  return out;
}

function filterSchema(spec: FieldSpec): z.ZodType {
  if (spec.kind === 'ref') return z.uuid().optional();
  if (spec.kind === 'bool') return z.stringbool().optional();
  if (spec.kind === 'int') return z.coerce.number().int().optional();
  return fieldSchema(spec).optional();
}

/** proto message → REST representation (dates as ISO 8601), as every read of the record answers it. */
export function toJson(record: RecordDeclaration, message: unknown): RecordJson {
  if (typeof message !== 'object' || message === null) throw new Error(`the service returned no ${record.name}`);
  const m = message as Record<string, unknown>;
  const audit = (m['audit'] ?? {}) as { createTime?: Date; updateTime?: Date; createdBy?: string; version?: string };
  const fields = Object.entries(messageValues(record, m)).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]);
  const at = (d: Date | undefined) => (d ?? new Date(0)).toISOString();
  return {
    id: String(m['id']),
    ...Object.fromEntries(fields),
    createdBy: audit.createdBy ?? '',
    createdAt: at(audit.createTime),
    updatedAt: at(audit.updateTime),
    version: Number(audit.version ?? 0),
  };
}

/**
 * `/api/v1/<plural>` over a record's gRPC service: the {@link CrudSpec} derived from the
 * declaration (schemas, REST ⇄ proto mapping, update mask as proto field names). `client` is a
 * generic grpc-js client of `record.service`.
 */
export function recordResource(record: RecordDeclaration, client: Client, deadlineMs: number): CrudSpec<RecordJson, Body, Body, Body> {
  const methods = recordMethods(record);
  const call = (name: string, request: object): Promise<Record<string, unknown>> => {
    const method: unknown = Reflect.get(client, name);
    if (typeof method !== 'function') throw new Error(`${record.name} service has no method ${name}`);
    return callUnary(client, method as UnaryMethod<object, Record<string, unknown>>, request, { deadlineMs });
  };
  const filters = Object.entries(record.fields).filter(([, spec]) => spec.filter);
  return {
    // the path segment in kebab-case (`tagRules` → `/api/v1/tag-rules`); proto keeps `tagRules`
    plural: snakeCase(record.plural).replaceAll('_', '-'),
    singular: record.name,
    schemas: recordSchemas(record),
    create: async (body) => toJson(record, (await call(methods.create, { [record.name]: { id: '', ...valuesMessage(record, body) } }))[record.name]),
    get: async (id) => toJson(record, (await call(methods.get, { id }))[record.name]),
    list: async (q) => {
      // repeated and map fields must be present for ts-proto's encoder; unknown keys are ignored by it
      const request: Record<string, unknown> = {
        pageSize: q['limit'] ?? 0,
        pageToken: q['cursor'] ?? '',
        query: q['q'] ?? '',
        orderBy: '',
        tags: [],
        tagsMatchAll: false,
        customFields: {},
        ...listRequest(record, q),
      };
      for (const [key, spec] of filters) if (spec.kind !== 'address') request[key] = toProto(spec, q[key] ?? null);
      const res = await call(methods.list, request);
      const items = Array.isArray(res[record.plural]) ? (res[record.plural] as unknown[]) : [];
      return {
        data: items.map((m) => toJson(record, m)),
        nextCursor: typeof res['nextPageToken'] === 'string' && res['nextPageToken'] ? res['nextPageToken'] : null,
      };
    },
    update: async (id, body, fields, expectedVersion) => {
      const res = await call(methods.update, { [record.name]: { id, ...valuesMessage(record, body) }, updateMask: fields.map(snakeCase), expectedVersion });
      return toJson(record, res[record.name]);
    },
    remove: async (id, expectedVersion) => {
      await call(methods.delete, { id, expectedVersion });
    },
  };
}

/**
 * The five REST routes of a record on its backend: wiring an aggregate into the gateway is this one
 * call. Writes require the record's `writeRoles` when it declares them (else the default write roles).
 */
export function recordRoutes(record: RecordDeclaration, backend: BackendContext): Route[] {
  const client = backend.client(makeGenericClientConstructor(record.service, pascalCase(record.name)));
  return crudRoutes(recordResource(record, client, backend.deadlineMs), backend.idempotency, record.writeRoles, (error) =>
    backend.logger?.error({ err: error, resource: record.plural }, 'unhandled error in a batch item'),
  );
}
