import { checkValue, companyRecord, contactRecord, enumNames, type CustomFieldDefinitionValue, type SegmentObjectName } from '@crm/contracts';
import { isUuid, type FieldViolation } from '@crm/platform';

/**
 * Segment criteria: which live companies or contacts a dynamic segment holds. Stored as JSON in
 * `segment.criteria`, validated when a segment is saved and again each time it is evaluated (a
 * custom field definition may have gone since), then compiled to ONE parameterised SQL boolean
 * expression over the record row aliased `r`. Values only ever travel as bind parameters;
 * identifiers (columns, expressions) come only from {@link CRITERIA_FIELDS}.
 *
 * ## Format
 * ```json
 * { "all": [
 *     { "field": "tags", "op": "any", "value": ["<tag id>"] },
 *     { "any": [
 *         { "field": "status", "op": "eq", "value": "active" },
 *         { "field": "lastContactedAt", "op": "within_days", "value": 30 } ] } ] }
 * ```
 * - A **group** is `{ "all": [item, …] }` (every item holds) or `{ "any": [item, …] }` (at least
 *   one holds), with at least one item. The criteria are a group. Groups nest at most
 *   {@link MAX_DEPTH} deep (the outer group is depth 1); at most {@link MAX_CONDITIONS} conditions in all.
 * - A **condition** is `{ "field": <name>, "op": <op>, "value": <value> }`, nothing else.
 * - **Fields** are the entries of {@link CRITERIA_FIELDS} valid for the segment's object, plus
 *   `cf.<key>` for each custom field definition of the object (inactive ones too: their values are
 *   kept). A field of the other object is refused.
 * - **Ops and values by type** ({@link OPS}):
 *   | type        | ops | value |
 *   | ----------- | --- | ----- |
 *   | tags        | any, all, none | tag ids (1..100 uuids) |
 *   | enum        | eq / in, not_in | a value name as served (`customer`) / 1..100 of them; not_in keeps records without a value |
 *   | text        | eq, in, contains | case-insensitive; 1..200 characters / 1..100 of them |
 *   | id          | eq, in | a user id / 1..100 of them |
 *   | instant     | before, after / between / within_days, not_within_days / is_empty | ISO 8601 date or instant / [from, to] (inclusive) / whole days 0..36500 (not_within_days keeps records without a value) / true or false |
 *   | number      | eq, gt, lt / in / between / is_empty | a finite number / 1..100 numbers / [low, high] inclusive / true or false |
 *   | custom `cf.<key>` | by the definition's type: text, url, email → eq, in, contains (case-insensitive), is_empty; number, decimal, date → eq, in, gt, lt, between, is_empty; boolean → eq, is_empty; select → eq, in, is_empty; multiselect → contains (has the option), in (has any of them), is_empty | values valid for the definition (checkValue) |
 *
 * ## Adding a field (the one place)
 * A field is one entry of {@link CRITERIA_FIELDS}: the objects it applies to, its type (which
 * decides ops, value checks and the SQL of each op) and a SQL expression over `r`. Nothing else
 * changes: not the format, not validation, not the compiler, not the API (the gateway documents
 * the format in prose and forwards criteria as JSON). For example, once other services feed
 * per-record metrics from their events into contacts-svc (say, a `metrics jsonb` column kept by a
 * consumer of `crm.activities.interaction.*`), these entries would make them segmentable:
 * ```ts
 * interactionCount: { objects: ['company', 'contact'], type: 'number', sql: `coalesce((r.metrics ->> 'interactionCount')::numeric, 0)` },
 * daysSinceLastInteraction: { objects: ['company', 'contact'], type: 'number', sql: `extract(day from now() - (r.metrics ->> 'lastInteractionAt')::timestamptz)` },
 * lifetimeValue: { objects: ['company'], type: 'number', sql: `(r.metrics ->> 'lifetimeValue')::numeric` },
 * ```
 * (The `metrics` column does not exist yet; only the registry entry and that column would be new.)
 */

/** Outer group = depth 1; a group inside it is depth 2, … */
export const MAX_DEPTH = 4;
/** Conditions of one criteria tree, all groups together. */
export const MAX_CONDITIONS = 50;
/** Items of one list value (`in`, tag ids). */
export const MAX_LIST = 100;
/** Longest text value. */
export const MAX_TEXT = 200;
/** Largest day count of within_days / not_within_days (about 100 years). */
export const MAX_DAYS = 36_500;

/** The value types of criteria fields; each has its ops in {@link OPS}. */
export type CriteriaType = 'tags' | 'enum' | 'text' | 'id' | 'instant' | 'number';

/** One criteria field: where it applies, its type and its SQL over the record row `r`. */
export interface CriteriaField {
  /** The segment objects that have the field. */
  objects: readonly SegmentObjectName[];
  type: CriteriaType;
  /** A column or expression over `r` (trusted SQL, never from input). */
  sql: string;
  /** enum only: the value names (REST names, as stored). */
  values?: readonly string[];
}

const BOTH = ['company', 'contact'] as const;
const names = (values: Record<string, number>): readonly string[] => enumNames(values);
const company = companyRecord.fields;
const contact = contactRecord.fields;

/**
 * The field registry: every criteria field but custom fields (`cf.<key>`, resolved from the
 * organization's definitions). Columns as the records kit names them (snake_case; addresses
 * `address_<part>`); enums are stored as their lower-case names.
 */
export const CRITERIA_FIELDS: Readonly<Record<string, CriteriaField>> = {
  tags: { objects: BOTH, type: 'tags', sql: 'r.tags' },
  accountType: { objects: ['company'], type: 'enum', sql: 'r.account_type', values: names(company.accountType.values) },
  status: { objects: ['company'], type: 'enum', sql: 'r.status', values: names(company.status.values) },
  priority: { objects: ['company'], type: 'enum', sql: 'r.priority', values: names(company.priority.values) },
  rating: { objects: ['company'], type: 'enum', sql: 'r.rating', values: names(company.rating.values) },
  source: { objects: BOTH, type: 'enum', sql: 'r.source', values: names(company.source.values) },
  preferredContactMethod: { objects: ['contact'], type: 'enum', sql: 'r.preferred_contact_method', values: names(contact.preferredContactMethod.values) },
  industry: { objects: ['company'], type: 'text', sql: 'r.industry' },
  country: { objects: ['company'], type: 'text', sql: 'r.address_country' },
  city: { objects: ['company'], type: 'text', sql: 'r.address_city' },
  ownerId: { objects: BOTH, type: 'id', sql: 'r.owner_id' },
  createdAt: { objects: BOTH, type: 'instant', sql: 'r.created_at' },
  updatedAt: { objects: BOTH, type: 'instant', sql: 'r.updated_at' },
  lastContactedAt: { objects: BOTH, type: 'instant', sql: 'r.last_contacted_at' },
  // per-record metrics fed by other services go here, one entry each (see the module comment)
};

/** Custom field operand kinds, by definition type. */
type CustomKind = 'cf_text' | 'cf_number' | 'cf_decimal' | 'cf_date' | 'cf_boolean' | 'cf_select' | 'cf_multiselect';
type Kind = CriteriaType | CustomKind;

/** The ops of each type (custom field types under `cf_<group>`). */
export const OPS: Readonly<Record<Kind, readonly string[]>> = {
  tags: ['any', 'all', 'none'],
  enum: ['eq', 'in', 'not_in'],
  text: ['eq', 'in', 'contains'],
  id: ['eq', 'in'],
  instant: ['before', 'after', 'between', 'within_days', 'not_within_days', 'is_empty'],
  number: ['eq', 'in', 'gt', 'lt', 'between', 'is_empty'],
  cf_text: ['eq', 'in', 'contains', 'is_empty'],
  cf_number: ['eq', 'in', 'gt', 'lt', 'between', 'is_empty'],
  cf_decimal: ['eq', 'in', 'gt', 'lt', 'between', 'is_empty'],
  cf_date: ['eq', 'in', 'gt', 'lt', 'between', 'is_empty'],
  cf_boolean: ['eq', 'is_empty'],
  cf_select: ['eq', 'in', 'is_empty'],
  cf_multiselect: ['contains', 'in', 'is_empty'],
};

const CUSTOM_KIND: Record<NonNullable<CustomFieldDefinitionValue['type']>, CustomKind> = {
  text: 'cf_text',
  url: 'cf_text',
  email: 'cf_text',
  number: 'cf_number',
  decimal: 'cf_decimal',
  date: 'cf_date',
  boolean: 'cf_boolean',
  select: 'cf_select',
  multiselect: 'cf_multiselect',
};

/** A group of criteria (JSON as stored). */
export type CriteriaGroup = { all: CriteriaNode[] } | { any: CriteriaNode[] };
/** A condition (JSON as stored). */
export interface CriteriaCondition {
  field: string;
  op: string;
  value: unknown;
}
/** An item of a group. */
export type CriteriaNode = CriteriaGroup | CriteriaCondition;

/** Appends a bind value and returns its placeholder (`$n`). */
export type Bind = (value: unknown) => string;

/** A checked condition, ready to render: its SQL given a way to bind values. */
interface CheckedCondition {
  render(bind: Bind): string;
}
/** Criteria after {@link checkCriteria}: the tree with every condition resolved and its values checked. */
export type CheckedCriteria = { mode: 'all' | 'any'; items: (CheckedCriteria | CheckedCondition)[] };

/** What criteria are checked against: the segment's object and the organization's custom field definitions of it. */
export interface CriteriaScope {
  object: SegmentObjectName;
  definitions: readonly Pick<CustomFieldDefinitionValue, 'key' | 'type' | 'options'>[];
}

/**
 * Validates criteria JSON (see the module comment) for `scope`. Returns the checked tree, or every
 * violation with its path under `path` (default `criteria`), e.g. `criteria.all.0.value`,
 * `criteria.any.1.all.0.field`. Never throws, whatever `input` is.
 */
export function checkCriteria(input: unknown, scope: CriteriaScope, path = 'criteria'): { criteria: CheckedCriteria } | { errors: FieldViolation[] } {
  const errors: FieldViolation[] = [];
  let conditions = 0;
  const refuse = (at: string, message: string): undefined => {
    errors.push({ field: at, message });
    return undefined;
  };
  const group = (node: unknown, at: string, depth: number): CheckedCriteria | undefined => {
    if (!isObject(node)) return refuse(at, 'must be a group { "all": [...] } or { "any": [...] }');
    const keys = Object.keys(node);
    const mode = keys.length === 1 && (keys[0] === 'all' || keys[0] === 'any') ? keys[0] : undefined;
    if (!mode) return refuse(at, 'must be a group with exactly one key, "all" or "any"');
    if (depth > MAX_DEPTH) return refuse(at, `groups nest at most ${MAX_DEPTH} deep`);
    const list = node[mode];
    if (!Array.isArray(list) || list.length === 0) return refuse(`${at}.${mode}`, 'must be a non-empty list of groups and conditions');
    const items = list.map((item: unknown, i) => {
      const here = `${at}.${mode}.${i}`;
      return isObject(item) && ('all' in item || 'any' in item) ? group(item, here, depth + 1) : condition(item, here);
    });
    return items.every((i) => i !== undefined) ? { mode, items } : undefined;
  };
  const condition = (node: unknown, at: string): CheckedCondition | undefined => {
    if (!isObject(node)) return refuse(at, 'must be a group or a condition { "field", "op", "value" }');
    conditions++;
    const extra = Object.keys(node).filter((k) => k !== 'field' && k !== 'op' && k !== 'value');
    if (extra.length) return refuse(`${at}.${extra[0]}`, 'unknown key of a condition (field, op, value)');
    const resolved = resolveField(node['field'], scope);
    if ('message' in resolved) return refuse(`${at}.field`, resolved.message);
    const ops = OPS[resolved.kind];
    const op = node['op'];
    if (typeof op !== 'string' || !ops.includes(op)) return refuse(`${at}.op`, `must be one of ${ops.join(', ')} for ${String(node['field'])}`);
    const value = checkOperand(resolved, op, node['value']);
    if ('message' in value) return refuse(`${at}.value`, value.message);
    return { render: (bind) => renderCondition(resolved, op, value.value, bind) };
  };
  const criteria = group(input, path, 1);
  if (conditions > MAX_CONDITIONS) refuse(path, `at most ${MAX_CONDITIONS} conditions`);
  return criteria && errors.length === 0 ? { criteria } : { errors: errors.length ? errors : [{ field: path, message: 'invalid criteria' }] };
}

/**
 * Checked criteria → a SQL boolean expression over the record row `r` (parenthesised), binding
 * every value through `bind` (placeholders `$n` of the caller's statement). The caller scopes the
 * statement by organization and live rows; this is only the segment's own condition.
 */
export function compileCriteria(criteria: CheckedCriteria, bind: Bind): string {
  const parts = criteria.items.map((item) => ('mode' in item ? compileCriteria(item, bind) : item.render(bind)));
  return `(${parts.join(criteria.mode === 'all' ? ' and ' : ' or ')})`;
}

/**
 * A statement's bind values with the binder that appends to them: `const { values, bind } =
 * binder(orgId)` → `$1` is the organization, the next `bind(v)` is `$2`, …
 */
export function binder(...initial: unknown[]): { values: unknown[]; bind: Bind } {
  const values = [...initial];
  return { values, bind: (value) => `$${values.push(value)}` };
}

/** A field resolved for a condition: its operand kind and SQL, with what checks its values. */
interface Resolved {
  kind: Kind;
  /** SQL of the operand given the binder (custom fields bind their key). */
  sql: (bind: Bind) => string;
  values?: readonly string[];
  definition?: Pick<CustomFieldDefinitionValue, 'key' | 'type' | 'options'>;
}

function resolveField(field: unknown, scope: CriteriaScope): Resolved | { message: string } {
  if (typeof field !== 'string' || field === '') return { message: 'must be a field name' };
  if (field.startsWith('cf.')) {
    const key = field.slice(3);
    const definition = scope.definitions.find((d) => d.key === key);
    if (!definition || definition.type === null) return { message: `no custom field ${key} of ${scope.object}s` };
    return { kind: CUSTOM_KIND[definition.type], sql: (bind) => `(r.custom_fields -> ${bind(key)}::text)`, definition };
  }
  const spec = Object.hasOwn(CRITERIA_FIELDS, field) ? CRITERIA_FIELDS[field] : undefined;
  if (!spec) return { message: `unknown field ${field}` };
  if (!spec.objects.includes(scope.object)) return { message: `${field} is not a field of ${scope.object}s` };
  return { kind: spec.type, sql: () => spec.sql, ...(spec.values ? { values: spec.values } : {}) };
}

type Checked = { value: unknown } | { message: string };
const ok = (value: unknown): Checked => ({ value });
const no = (message: string): Checked => ({ message });

/** Checks each item of a list value (1..MAX_LIST items) with `one`. */
function list(raw: unknown, one: (v: unknown) => Checked): Checked {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_LIST) return no(`must be a list of 1 to ${MAX_LIST} values`);
  const out: unknown[] = [];
  for (const [i, item] of raw.entries()) {
    const c = one(item);
    if ('message' in c) return no(`item ${i}: ${c.message}`);
    out.push(c.value);
  }
  return ok(out);
}

function pair(raw: unknown, one: (v: unknown) => Checked): Checked {
  if (!Array.isArray(raw) || raw.length !== 2) return no('must be a pair [from, to]');
  return list(raw, one);
}

function text(raw: unknown): Checked {
  if (typeof raw !== 'string' || raw.trim() === '') return no('must be a non-empty string');
  if (raw.length > MAX_TEXT) return no(`must be at most ${MAX_TEXT} characters`);
  return raw.includes('\u0000') || !raw.isWellFormed() ? no('must not contain NUL characters or unpaired surrogates') : ok(raw.trim());
}

function bool(raw: unknown): Checked {
  return typeof raw === 'boolean' ? ok(raw) : no('must be true or false');
}

function finite(raw: unknown): Checked {
  return typeof raw === 'number' && Number.isFinite(raw) ? ok(raw) : no('must be a finite number');
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** An ISO 8601 date (`YYYY-MM-DD`, midnight UTC) or instant with offset, years 1..9999 → ISO string. */
function instant(raw: unknown): Checked {
  const message = 'must be an ISO 8601 date (YYYY-MM-DD) or instant (2026-11-21T09:30:00Z)';
  if (typeof raw !== 'string' || raw.length > 40) return no(message);
  const isDate = DATE.test(raw);
  if (!isDate && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(raw)) return no(message);
  const at = new Date(isDate ? `${raw}T00:00:00Z` : raw);
  const year = at.getUTCFullYear();
  if (Number.isNaN(at.getTime()) || year < 1 || year > 9999) return no(message);
  if (isDate && at.toISOString().slice(0, 10) !== raw) return no('must be a date that exists');
  return ok(at.toISOString());
}

function days(raw: unknown): Checked {
  return typeof raw === 'number' && Number.isInteger(raw) && raw >= 0 && raw <= MAX_DAYS ? ok(raw) : no(`must be a whole number of days, 0..${MAX_DAYS}`);
}

/** A custom field value of the definition's type (its own rules, custom-fields.ts). */
function customValue(definition: Resolved['definition'], raw: unknown): Checked {
  if (!definition) return no('no definition');
  const c = checkValue(definition, raw);
  return 'message' in c ? no(c.message) : ok(c.value);
}

function checkOperand(f: Resolved, op: string, raw: unknown): Checked {
  if (op === 'is_empty') return bool(raw);
  switch (f.kind) {
    case 'tags':
      return list(raw, (v) => (typeof v === 'string' && isUuid(v) ? ok(v.toLowerCase()) : no('must be a tag id (uuid)')));
    case 'enum': {
      const one = (v: unknown): Checked => (typeof v === 'string' && f.values?.includes(v) ? ok(v) : no(`must be one of ${f.values?.join(', ')}`));
      return op === 'eq' ? one(raw) : list(raw, one);
    }
    case 'text':
    case 'id':
      return op === 'in' ? list(raw, text) : text(raw);
    case 'instant':
      if (op === 'between') return pair(raw, instant);
      return op === 'within_days' || op === 'not_within_days' ? days(raw) : instant(raw);
    case 'number':
    case 'cf_number':
      return op === 'in' ? list(raw, finite) : op === 'between' ? pair(raw, finite) : finite(raw);
    case 'cf_text':
      // contains: a fragment, not a whole value (an e-mail domain, part of a URL)
      return op === 'in' ? list(raw, (v) => customValue(f.definition, v)) : op === 'contains' ? text(raw) : customValue(f.definition, raw);
    case 'cf_decimal':
    case 'cf_date':
    case 'cf_boolean':
    case 'cf_select': {
      const one = (v: unknown) => customValue(f.definition, v);
      return op === 'in' ? list(raw, one) : op === 'between' ? pair(raw, one) : one(raw);
    }
    case 'cf_multiselect': {
      const option = (v: unknown): Checked => customValue({ type: 'select', key: '', options: f.definition?.options ?? [] }, v);
      return op === 'in' ? list(raw, option) : option(raw);
    }
    default:
      return no(`unknown type ${String(f.kind satisfies never)}`);
  }
}

/** `%`, `_` and `\` escaped for LIKE (default escape `\`), wrapped for "contains". */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Decimal strings as stored by custom fields (custom-fields.ts: numeric(38,10)). */
const DECIMAL_SQL = `'^-?[0-9]{1,28}([.][0-9]{1,10})?$'`;
const DATE_SQL = `'^[0-9]{4}-[0-9]{2}-[0-9]{2}$'`;

/**
 * A custom field's JSON value (`j`, jsonb) as a typed SQL value, or null when the stored value is
 * not of that type (a definition deleted and re-created with another type leaves old values
 * behind): comparisons never fail on a stray value, they just do not match.
 */
function customOperand(kind: CustomKind, j: string): string {
  const txt = `(${j} #>> '{}')`;
  switch (kind) {
    case 'cf_number':
      return `(case when jsonb_typeof(${j}) = 'number' then ${txt}::numeric end)`;
    case 'cf_decimal':
      return `(case when jsonb_typeof(${j}) = 'string' and ${txt} ~ ${DECIMAL_SQL} then ${txt}::numeric end)`;
    case 'cf_date':
      return `(case when jsonb_typeof(${j}) = 'string' and ${txt} ~ ${DATE_SQL} then ${txt} end) collate "C"`;
    default:
      return `(case when jsonb_typeof(${j}) = 'string' then ${txt} end)`;
  }
}

function renderCondition(f: Resolved, op: string, value: unknown, bind: Bind): string {
  const col = f.sql(bind);
  if (op === 'is_empty') {
    const empty = f.kind.startsWith('cf_') ? `coalesce(jsonb_typeof(${col}), 'null') = 'null'` : `${col} is null`;
    return value === true ? `(${empty})` : `(not (${empty}))`;
  }
  const v = value;
  const pairOf = (cast: string) => `between ${bind((value as unknown[])[0])}${cast} and ${bind((value as unknown[])[1])}${cast}`;
  switch (f.kind) {
    case 'tags': {
      const ids = `${bind(value)}::uuid[]`;
      return op === 'any' ? `(${col} && ${ids})` : op === 'all' ? `(${col} @> ${ids})` : `(not (${col} && ${ids}))`;
    }
    case 'enum':
      if (op === 'eq') return `(${col} = ${bind(v)})`;
      return op === 'in' ? `(${col} = any(${bind(v)}::text[]))` : `(${col} is null or ${col} <> all(${bind(v)}::text[]))`;
    case 'id':
      return op === 'eq' ? `(${col} = ${bind(v)})` : `(${col} = any(${bind(v)}::text[]))`;
    case 'text':
    case 'cf_text': {
      const t = f.kind === 'text' ? col : customOperand(f.kind, col);
      if (op === 'eq') return `(lower(${t}) = lower(${bind(v)}))`;
      if (op === 'in') return `(lower(${t}) = any(select lower(x) from unnest(${bind(v)}::text[]) x))`;
      return `(${t} ilike ${bind(containsPattern(String(value)))})`;
    }
    case 'instant': {
      if (op === 'within_days') return `(${col} >= now() - make_interval(days => ${bind(v)}::int))`;
      if (op === 'not_within_days') return `(${col} is null or ${col} < now() - make_interval(days => ${bind(v)}::int))`;
      if (op === 'between') return `(${col} ${pairOf('::timestamptz')})`;
      return `(${col} ${op === 'before' ? '<' : '>'} ${bind(v)}::timestamptz)`;
    }
    case 'number':
    case 'cf_number':
    case 'cf_decimal': {
      const n = f.kind === 'number' ? col : customOperand(f.kind, col);
      const num = (x: unknown) => `${bind(String(x))}::numeric`;
      if (op === 'in') return `(${n} = any(${bind((value as unknown[]).map(String))}::numeric[]))`;
      if (op === 'between') return `(${n} between ${num((value as unknown[])[0])} and ${num((value as unknown[])[1])})`;
      return `(${n} ${op === 'gt' ? '>' : op === 'lt' ? '<' : '='} ${num(value)})`;
    }
    case 'cf_date': {
      const d = customOperand(f.kind, col);
      if (op === 'in') return `(${d} = any(${bind(v)}::text[]))`;
      if (op === 'between') return `(${d} ${pairOf('::text')})`;
      return `(${d} ${op === 'gt' ? '>' : op === 'lt' ? '<' : '='} ${bind(v)}::text)`;
    }
    case 'cf_boolean':
      return `(${col} = ${bind(JSON.stringify(value))}::jsonb)`;
    case 'cf_select': {
      const s = customOperand(f.kind, col);
      return op === 'eq' ? `(${s} = ${bind(v)}::text)` : `(${s} = any(${bind(v)}::text[]))`;
    }
    case 'cf_multiselect': {
      if (op === 'contains') return `(${col} @> ${bind(JSON.stringify([value]))}::jsonb)`;
      const options = `(case when jsonb_typeof(${col}) = 'array' then ${col} end)`;
      return `(exists (select from jsonb_array_elements_text(${options}) o where o = any(${bind(v)}::text[])))`;
    }
    default:
      throw new Error(`unknown criteria type ${String(f.kind satisfies never)}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
