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
 * body's example changes two fields.
 */
export function recordSchemas(record: RecordDeclaration) {
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
  const searched = fields.filter(([, spec]) => spec.search).map(([key]) => key);
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
    query: listQueryBase.extend({
      ...(searched.length
        ? {
            q: z
              .string()
              .max(200)
              .optional()
              .describe(`case-insensitive substring of ${searched.join(', ')}`),
          }
        : {}),
      ...Object.fromEntries(fields.filter(([, spec]) => spec.filter).map(([key, spec]) => [key, filterSchema(spec)])),
    }),
  };
}

function filterSchema(spec: FieldSpec): z.ZodType {
  if (spec.kind === 'ref') return z.uuid().optional();
  if (spec.kind === 'bool') return z.stringbool().optional();
  if (spec.kind === 'int') return z.coerce.number().int().optional();
  return fieldSchema(spec).optional();
}

/** proto message → REST representation (dates as ISO 8601). */
function toJson(record: RecordDeclaration, message: unknown): RecordJson {
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
      const request: Record<string, unknown> = { pageSize: q['limit'] ?? 0, pageToken: q['cursor'] ?? '', query: q['q'] ?? '' };
      for (const [key, spec] of filters) request[key] = toProto(spec, q[key] ?? null);
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
  return crudRoutes(recordResource(record, client, backend.deadlineMs), backend.idempotency, record.writeRoles);
}
