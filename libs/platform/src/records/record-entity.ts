import { DecimalType, EntitySchema } from '@mikro-orm/core';
import { isBlankText, pascalCase, snakeCase, type Address, type FieldSpec, type Money, type RecordDeclaration, type ValuesOf } from '@crm/contracts';
import { quoteIdent, tenantFilter } from '../persistence/database.ts';
import { searchExpression } from './search.ts';

/** Columns every record table has besides its declared fields (architecture "Data rules"). */
export interface SystemColumns {
  id: string;
  organizationId: string;
  createdAt: Date;
  updatedAt: Date;
  createdBy: string;
  /** Optimistic lock, bumped by MikroORM on every flush that changes the row. */
  version: number;
  /** Soft-deleted records only. */
  deletedAt?: Date | null;
}

/** A stored record: system columns plus the declared fields, as MikroORM hydrates them. */
export type RecordRow<F extends Record<string, FieldSpec> = Record<string, FieldSpec>> = SystemColumns & ValuesOf<F>;

/**
 * How the kit's generic code sees any record row. MikroORM's types cannot follow a generic field
 * table, so the schema is built over this and services get the typed {@link RecordRow} from the
 * record service.
 */
export type StoredRow = SystemColumns & { [field: string]: unknown };

/** Money embeddable: `<field>_amount numeric(19,4)`, `<field>_currency varchar(3)`. */
export const MoneyEmbeddable = new EntitySchema<Money>({
  name: 'MoneyEmbeddable',
  embeddable: true,
  properties: {
    amount: { type: new DecimalType('string'), precision: 19, scale: 4 },
    currency: { type: 'string', length: 3 },
  },
});

/** Postal-address embeddable: `<field>_street`, `_city`, `_region`, `_postal_code`, `_country` (text). */
export const AddressEmbeddable = new EntitySchema<Address>({
  name: 'AddressEmbeddable',
  embeddable: true,
  properties: {
    street: { type: 'text', nullable: true },
    city: { type: 'text', nullable: true },
    region: { type: 'text', nullable: true },
    postalCode: { type: 'text', nullable: true },
    country: { type: 'text', nullable: true },
  },
});

/** The embeddables record entities use; list them with the entities (see {@link recordEntities}). */
export const RECORD_EMBEDDABLES = [MoneyEmbeddable, AddressEmbeddable];

// Record entities by entity name, so a `ref` field's `to` (plain data in the declaration) finds
// its target — read lazily, when MikroORM discovers the entities or a reference is checked.
const byName = new Map<string, EntitySchema<StoredRow>>();

/** The record entity named `name` (e.g. `Company`); throws when no record entity has that name. */
export function recordEntityNamed(name: string): EntitySchema<StoredRow> {
  const entity = byName.get(name);
  if (!entity) throw new Error(`no record entity named ${name} (is its recordEntity() built and listed?)`);
  return entity;
}

/**
 * The MikroORM entity of a record declaration: table `<name>` (snake_case) in the service's
 * schema, system columns, one property per field (money and address embedded), the `tenant`
 * filter (a query without a tenant fails) and, for soft-deleted records, the default `live`
 * filter. The schema objects follow from the declaration by name, and the committed migration
 * must create exactly these (each service's schema test proves it):
 * - `<table>_org_idx` on (organization_id, id) — every list is organization-first, keyset by id;
 * - `filter` field → `<table>_<column>_idx` on (organization_id, column, id);
 * - `unique` field → unique `<table>_<column>_uq` on (organization_id, column) for non-null values;
 *   with `caseInsensitive`, on (organization_id, lower(column)) — an expression index, which
 *   MikroORM's schema diff compares by name only, so a test of the service checks its definition;
 * - `ref` field → foreign key `<table>_<column>_fkey` (on delete no action) and its index
 *   `<table>_<column>_ref_idx` on (column);
 * - `int` field with min/max → check `<table>_<column>_check`;
 * - each of the declaration's `sorts` → `<table>_<sort>_sort_idx` on
 *   (organization_id, its columns, id) — a nullable timestamp as `coalesce(…, '-infinity')`;
 * - `address` field with `filter` → `<table>_<column>_city_idx` (lower(city)) and `_country_idx`;
 * - `search` fields → `<table>_search_idx`, GIN trigram over their folded text (search.ts); the
 *   migration needs `platformSearchMigration` before it.
 * Soft-deleted tables' indexes are partial (`where deleted_at is null`).
 */
export function recordEntity(record: RecordDeclaration): EntitySchema<StoredRow> {
  const table = snakeCase(record.name);
  const live = record.softDelete ? 'deleted_at is null' : undefined;
  const and = (...parts: (string | undefined)[]) => parts.filter(Boolean).join(' and ') || undefined;
  const fields = Object.entries(record.fields);
  const entity = new EntitySchema<StoredRow>({
    name: pascalCase(record.name),
    tableName: table,
    filters: record.softDelete ? { ...tenantFilter, live: { name: 'live', cond: { deletedAt: null }, default: true } } : { ...tenantFilter },
  });
  byName.set(pascalCase(record.name), entity); // before the fields: a ref may point at itself (hierarchies)
  entity.addPrimaryKey('id', 'uuid');
  entity.addProperty('organizationId', 'uuid');
  for (const [key, spec] of fields) {
    const column = snakeCase(key);
    if (spec.kind === 'money' || spec.kind === 'address') {
      const target: EntitySchema = spec.kind === 'money' ? MoneyEmbeddable : AddressEmbeddable;
      entity.addEmbedded(key, { entity: () => target, nullable: true });
    } else if (spec.kind === 'ref') {
      // a many-to-one mapped to its primary key: the value stays a uuid string, the FK is real
      entity.addManyToOne(key, 'uuid', {
        entity: () => recordEntityNamed(spec.to),
        mapToPk: true,
        nullable: true,
        fieldName: column,
        foreignKeyName: `${table}_${column}_fkey`,
        deleteRule: 'no action',
      });
      // the foreign key's own index (all rows, column first): deleting or re-keying a target row
      // checks the referencing rows through it instead of scanning the table
      entity.addIndex({ name: `${table}_${column}_ref_idx`, properties: [key] });
    } else {
      const nullable = !['bool', 'owner', 'tags', 'strings'].includes(spec.kind) && !isBlankText(spec);
      const type = spec.kind === 'decimal' ? new DecimalType('string') : COLUMN[spec.kind];
      const defaults = spec.kind === 'bool' ? { default: spec.default ?? false } : spec.kind === 'tags' || spec.kind === 'strings' ? { default: [] } : {};
      entity.addProperty(key, type, { nullable, ...defaults, ...(spec.kind === 'decimal' ? { precision: spec.precision, scale: spec.scale } : {}) });
    }
    if (spec.filter && spec.kind === 'address') {
      // lists filter an address by city (case-insensitive) and country
      for (const [part, expression] of [
        ['city', `lower(${column}_city)`],
        ['country', `${column}_country`],
      ] as const) {
        entity.addIndex({
          name: `${table}_${column}_${part}_idx`,
          expression: (_c, t, name) => `create index ${name} on ${t.qualifiedName} (organization_id, ${expression}, id)${live ? ` where ${live}` : ''}`,
        });
      }
    } else if (spec.filter) entity.addIndex({ name: `${table}_${column}_idx`, properties: ['organizationId', key, 'id'], where: live });
    if (spec.unique && spec.caseInsensitive) {
      const where = and(live, `${column} is not null`);
      entity.addUnique({
        name: `${table}_${column}_uq`,
        expression: (_, on, name) => `create unique index ${quoteIdent(name)} on ${String(on)} (organization_id, lower(${quoteIdent(column)})) where ${where}`,
      });
    } else if (spec.unique) {
      entity.addUnique({ name: `${table}_${column}_uq`, properties: ['organizationId', key], where: and(live, `${column} is not null`) });
    }
    if (spec.kind === 'int' && (spec.min !== undefined || spec.max !== undefined)) {
      const expression = and(spec.min === undefined ? undefined : `${column} >= ${spec.min}`, spec.max === undefined ? undefined : `${column} <= ${spec.max}`);
      entity.meta.checks.push({ name: `${table}_${column}_check`, property: key, expression: expression ?? '' });
    }
  }
  entity.addIndex({ name: `${table}_org_idx`, properties: ['organizationId', 'id'], where: live });
  // one index per declared sort (record-reader.ts #sortExpression: nullable timestamps sort as -infinity)
  for (const [name, keys] of Object.entries(record.sorts ?? {})) {
    const columns = keys.map((k) => {
      const spec = record.fields[k];
      return spec?.kind === 'timestamp' ? `coalesce(${snakeCase(k)}, '-infinity'::timestamptz)` : snakeCase(k);
    });
    entity.addIndex({
      name: `${table}_${snakeCase(name)}_sort_idx`,
      expression: (_c, t, index) => `create index ${index} on ${t.qualifiedName} (organization_id, ${columns.join(', ')}, id)${live ? ` where ${live}` : ''}`,
    });
  }
  const searched = fields.filter(([, spec]) => spec.search).map(([key]) => key);
  if (searched.length) {
    // search.ts: the trigram index a list's `q` is answered from (compared by name in schema tests);
    // built with the table's schema, where the platform search migration creates crm_fold
    entity.addIndex({
      name: `${table}_search_idx`,
      expression: (_columns, t, name) =>
        `create index ${name} on ${t.qualifiedName} using gin (${searchExpression(t.schema ?? 'public', searched)} public.gin_trgm_ops)${live ? ` where ${live}` : ''}`,
    });
  }
  entity.addProperty('createdAt', 'datetime');
  entity.addProperty('updatedAt', 'datetime');
  entity.addProperty('createdBy', 'text');
  entity.addVersion('version', 'integer');
  if (record.softDelete) entity.addProperty('deletedAt', 'datetime', { nullable: true });
  return entity;
}

/** Entities plus the embeddables they use, for a service's ORM entity list. */
export function recordEntities(...entities: EntitySchema<StoredRow>[]): EntitySchema[] {
  return [...entities, ...RECORD_EMBEDDABLES];
}

/** Column type of each scalar kind (money, address and ref are embedded or relations, see above). */
const COLUMN: Record<Exclude<FieldSpec['kind'], 'money' | 'address' | 'ref'>, string> = {
  text: 'text',
  email: 'text',
  enum: 'text',
  owner: 'text',
  int: 'integer',
  decimal: 'decimal',
  date: 'date',
  timestamp: 'datetime',
  bool: 'boolean',
  tags: 'uuid[]',
  json: 'json',
  strings: 'text[]',
  value: 'json',
};
