import type { ServiceDefinition } from '@grpc/grpc-js';
import { fromProto, toProto, type FieldSpec, type FieldTable } from './fields.ts';

/**
 * A ts-proto message codec (`MessageFns`), type-erased so that every event message fits (method
 * parameters are bivariant): encode for the outbox, decode for consumers and tests.
 */
export interface MessageCodec {
  encode(message: object): { finish(): Uint8Array };
  decode(input: Uint8Array): object;
}

/** Keycloak realm roles of the suite (architecture "Tenancy and identity"), as a record's `writeRoles` names them. */
export type RecordRole = 'crm-admin' | 'crm-manager' | 'crm-rep' | 'crm-viewer';

/**
 * One aggregate, declared once: names, the gRPC service with the five record calls, the three
 * event messages and the field table. Everything else — REST schemas and mapping, the MikroORM
 * entity, the proto mapping, the record service, the gRPC binding, OpenAPI — is derived from it.
 *
 * Conventions the derivation relies on (ts-proto names, AIP-style calls):
 * - gRPC methods `create<Name>`, `get<Name>`, `list<Plural>`, `update<Name>`, `delete<Name>`;
 *   requests/responses carry the record as field `<name>`, lists as `<plural>` + `nextPageToken`;
 * - events `crm.<domain>.<name>.created|updated|deleted` with messages `{ <name> }`,
 *   `{ <name>, changedFields, changes }` and `{ <name>Id }`;
 * - table `<name>` (snake_case) in the service's schema; REST path `/api/v1/<plural>` (kebab-case:
 *   `tagRules` → `/api/v1/tag-rules`).
 */
export interface RecordDeclaration<M = unknown, F extends Record<string, FieldSpec> = Record<string, FieldSpec>> {
  /** Aggregate name, camelCase singular (`company`, `salesTeam`). */
  name: string;
  /** camelCase plural (`companies`). */
  plural: string;
  /** Owning domain = service (`contacts`): event subjects `crm.<domain>.<name>.*`. */
  domain: string;
  /** Soft delete (`deleted_at`) where users expect undo; otherwise rows are deleted. */
  softDelete: boolean;
  /** ts-proto grpc-js service definition holding the five calls. */
  service: ServiceDefinition;
  /**
   * `{ <name> }`, `{ <name>, changedFields, changes: FieldChange[] }`, `{ <name>Id }`; further
   * kinds (snake_case, e.g. `status_changed`) are events the service's hooks emit besides them
   * (subject `crm.<domain>.<name>.<kind>`, message `crm.events.v1.<Name><Kind>`).
   */
  events: { created: MessageCodec; updated: MessageCodec; deleted: MessageCodec } & { [kind: string]: MessageCodec };
  fields: F;
  /**
   * Realm roles that may create, change and delete these records. Default: crm-admin, crm-manager
   * and crm-rep (ownership then decided by an `owner` field, if any). Configuration aggregates
   * (custom fields, tags) name `['crm-admin']`. Enforced at both edges: the gateway's write routes
   * answer 403, and the record service refuses with PERMISSION_DENIED `NOT_ALLOWED` (a gRPC caller
   * cannot bypass it). Reads stay open to every role.
   */
  writeRoles?: readonly RecordRole[];
  /**
   * Orders lists may be sorted in (default: creation order): name → fields compared in turn, e.g.
   * `{ name: ['lastName', 'firstName'], createdAt: ['createdAt'] }` (`createdAt`/`updatedAt` are
   * the system columns). Text fields must be never-null (`required`/`blank`); timestamps may be
   * null (they sort first ascending). REST `sort=<name>` or `-<name>`, proto `order_by` `<snake_name>
   * [desc]`; keyset-paged on the fields + id, each served by index `<table>_<snake_name>_sort_idx`.
   */
  sorts?: Readonly<Record<string, readonly string[]>>;
  /** Phantom: the proto message the table was checked against. */
  readonly message?: M;
}

/**
 * Declares an aggregate for proto message `M`: `defineRecord<contactsV1.Company>()({ … })`. The
 * field table must name every field of `M` except `id` and `audit` exactly once, with a kind that
 * fits its proto type — otherwise it does not compile.
 */
export function defineRecord<M>() {
  return <const F extends FieldTable<M>>(
    declaration: Omit<RecordDeclaration<M, F>, 'fields' | 'message'> & { fields: F & Record<Exclude<keyof F, keyof FieldTable<M>>, never> },
  ): RecordDeclaration<M, F> => declaration;
}

/** The times a record's lists can be bounded by: `createdAt`, `updatedAt` and its `timestamp` fields. */
export function timeFields(record: RecordDeclaration): string[] {
  return [
    'createdAt',
    'updatedAt',
    ...Object.entries(record.fields)
      .filter(([, spec]) => spec.kind === 'timestamp')
      .map(([key]) => key),
  ];
}

/**
 * The list parameters bounding time field `key` (camelCase; `createdAt`, `updatedAt` or a
 * `timestamp` field): `createdAt` → `createdAfter` / `createdBefore` (REST and, as
 * `created_after` / `created_before`, proto list requests).
 */
export function timeRangeParams(key: string): { after: string; before: string } {
  const stem = key.replace(/At$/, '');
  return { after: `${stem}After`, before: `${stem}Before` };
}

/** `parentCompanyId` → `parent_company_id` (proto field names, update-mask paths, columns). */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `company` → `Company`. */
export function pascalCase(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/** `parentCompanyId` → `PARENT_COMPANY` (error codes). */
export function screamingCase(name: string): string {
  return snakeCase(name).toUpperCase();
}

/** The gRPC method names of a record's five calls. */
export function recordMethods(r: Pick<RecordDeclaration, 'name' | 'plural'>) {
  const one = pascalCase(r.name);
  return { create: `create${one}`, get: `get${one}`, list: `list${pascalCase(r.plural)}`, update: `update${one}`, delete: `delete${one}` } as const;
}

/** A record's proto message → its field values (the one value shape); `id` and `audit` are not fields. */
export function messageValues(record: Pick<RecordDeclaration, 'fields'>, message: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record.fields).map(([key, spec]) => [key, fromProto(spec, message[key])]));
}

/** Field values → the fields of a record's proto message (absent/null → proto default). */
export function valuesMessage(record: Pick<RecordDeclaration, 'fields'>, values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record.fields).map(([key, spec]) => [key, toProto(spec, values[key] ?? null)]));
}
