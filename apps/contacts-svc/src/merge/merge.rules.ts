import { isUuid, type FieldViolation } from '@crm/platform';

/**
 * The rules of merging records, as pure functions over rows (a table row as `to_jsonb` gives it:
 * column name → JSON value) and field values. merge.service.ts runs them in the merge's
 * transaction; they are unit-tested on their own (merge.rules.spec.ts).
 */

/** A table row as `to_jsonb(row)` gives it: column → JSON value. */
export type Row = Record<string, unknown>;

/** Most records merged into one survivor at once (Salesforce: 2, HubSpot: 1). */
export const MAX_MERGED = 10;

/** How long a merge can be undone, days. */
export const UNDO_DAYS = 30;

/** A checked merge request. */
export interface MergeRequest {
  survivorId: string;
  mergedIds: string[];
  /** Field → id of the survivor or a merged record. */
  fieldChoices: Record<string, string>;
}

/**
 * Checks a merge request's shape: `mergedIds` 1..{@link MAX_MERGED} UUIDs, distinct, without the
 * survivor; `fieldChoices` keys among `choosable`, values the survivor or one of `mergedIds`.
 * Ids are compared lower-cased and returned so. Returns the violations (fields `mergedIds`,
 * `mergedIds.<i>`, `fieldChoices.<field>`), empty when the request is well-formed.
 */
export function checkMergeRequest(
  input: { survivorId: string; mergedIds: readonly string[]; fieldChoices: Readonly<Record<string, string>> },
  choosable: readonly string[],
): { request: MergeRequest; violations: FieldViolation[] } {
  const violations: FieldViolation[] = [];
  const survivorId = input.survivorId.toLowerCase();
  const mergedIds = input.mergedIds.map((id) => id.toLowerCase());
  if (mergedIds.length === 0) violations.push({ field: 'mergedIds', message: 'name at least one record to merge into the survivor' });
  if (mergedIds.length > MAX_MERGED) violations.push({ field: 'mergedIds', message: `at most ${MAX_MERGED} records per merge` });
  mergedIds.forEach((id, i) => {
    if (!isUuid(id)) violations.push({ field: `mergedIds.${i}`, message: 'not a record id' });
    else if (id === survivorId) violations.push({ field: `mergedIds.${i}`, message: 'the survivor cannot be merged into itself' });
    else if (mergedIds.indexOf(id) !== i) violations.push({ field: `mergedIds.${i}`, message: 'named twice' });
  });
  const fieldChoices: Record<string, string> = {};
  for (const [field, id] of Object.entries(input.fieldChoices)) {
    const source = typeof id === 'string' ? id.toLowerCase() : '';
    if (!choosable.includes(field)) violations.push({ field: `fieldChoices.${field}`, message: `not a field a merge chooses; one of ${choosable.join(', ')}` });
    else if (source !== survivorId && !mergedIds.includes(source))
      violations.push({ field: `fieldChoices.${field}`, message: 'must name the survivor or a merged record' });
    else fieldChoices[field] = source;
  }
  return { request: { survivorId, mergedIds, fieldChoices }, violations };
}

/** True when a field value counts as absent (null, empty text, empty list or object). Booleans and numbers are never absent. */
export function isEmptyValue(value: unknown): boolean {
  if (value === null || value === undefined || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object' && !(value instanceof Date)) return Object.keys(value).length === 0;
  return false;
}

/**
 * Which record each field's value comes from: the chosen one; else the survivor's, unless it is
 * empty — then the first merged record (in `mergedIds` order) that has one; else the survivor's.
 * `values` are the records' field values by id (the survivor first is not required).
 */
export function fieldSources(
  fields: readonly string[],
  request: MergeRequest,
  values: ReadonlyMap<string, Readonly<Record<string, unknown>>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of fields) {
    const chosen = request.fieldChoices[field];
    if (chosen) {
      out[field] = chosen;
      continue;
    }
    const survivor = values.get(request.survivorId)?.[field];
    const filler = isEmptyValue(survivor) ? request.mergedIds.find((id) => !isEmptyValue(values.get(id)?.[field])) : undefined;
    out[field] = filler ?? request.survivorId;
  }
  return out;
}

/** Tag ids of all records, each once, in order: the survivor's, then each merged record's. */
export function unionTags(lists: readonly (readonly string[] | null | undefined)[]): string[] {
  return [...new Set(lists.flatMap((l) => l ?? []))];
}

/** Custom field values merged key by key: the first object (the survivor's) wins, later ones fill missing keys; null when none. */
export function unionCustomFields(objects: readonly (Readonly<Record<string, unknown>> | null | undefined)[]): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const o of objects) for (const [k, v] of Object.entries(o ?? {})) if (!(k in out) && v !== null && v !== undefined) out[k] = v;
  return Object.keys(out).length ? out : null;
}

/** JSON with object keys sorted at every level: equal values compare equal whatever their key order (jsonb sorts keys). */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value ?? null;
}

/** Columns whose values differ between two rows (canonical JSON comparison), among `columns`. */
export function changedColumns(before: Row, after: Row, columns: readonly string[]): string[] {
  return columns.filter((c) => canonical(before[c]) !== canonical(after[c]));
}

/**
 * The three-way restore of an undo, per column the merge changed (before ≠ after): the value
 * before the merge where the row still holds the merge's value, else the row's later value is
 * kept and the column is a conflict. Tag columns are restored as sets: the tags the merge added
 * are removed (those still there), tags added since stay — never a conflict. Object columns
 * (`objectColumns`: custom fields) are restored key by key, each key three-way as a column is: a
 * key the merge added is removed, a key it changed gets its value back, where the key still holds
 * the merge's value; a key changed since keeps its later value and is a conflict named
 * `<column>.<key>` (other keys are still restored). Only `columns` are
 * considered (the record's field columns: never version or timestamps). Returns the columns to
 * write with their values and the conflicting columns.
 */
export function restoreColumns(
  before: Row,
  after: Row,
  current: Row,
  columns: readonly string[],
  options: { setColumns?: readonly string[]; objectColumns?: readonly string[] } = {},
): { restore: Row; conflicts: string[] } {
  const restore: Row = {};
  const conflicts: string[] = [];
  for (const column of changedColumns(before, after, columns)) {
    if (options.setColumns?.includes(column)) {
      const added = new Set(asStrings(after[column]).filter((t) => !asStrings(before[column]).includes(t)));
      const now = asStrings(current[column]);
      const kept = now.filter((t) => !added.has(t));
      if (kept.length !== now.length) restore[column] = kept;
      continue;
    }
    if (options.objectColumns?.includes(column)) {
      const [b, a, c] = [asObject(before[column]), asObject(after[column]), asObject(current[column])];
      const next: Record<string, unknown> = { ...c };
      let changed = false;
      for (const key of [...new Set([...Object.keys(b), ...Object.keys(a)])].sort()) {
        if (canonical(b[key]) === canonical(a[key])) continue;
        if (canonical(c[key]) !== canonical(a[key])) {
          conflicts.push(`${column}.${key}`);
          continue;
        }
        if (b[key] === undefined || b[key] === null) delete next[key];
        else next[key] = b[key];
        changed = true;
      }
      if (changed) restore[column] = Object.keys(next).length ? next : null;
      continue;
    }
    if (canonical(current[column]) === canonical(after[column])) restore[column] = before[column] ?? null;
    else conflicts.push(column);
  }
  return { restore, conflicts };
}

function asObject(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function asStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
