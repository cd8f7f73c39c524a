import type { CustomFieldDefinitionValue, CustomFieldType } from './custom-field.record.ts';
import { emailSchema, fieldSchema } from './schemas.ts';

/**
 * Custom field values: the `customFields` JSON object of companies and contacts, checked against
 * the organization's custom field definitions of that object (custom-field.record.ts). Pure and
 * shared: contacts-svc calls {@link validateCustomFields} from the company/contact write hooks and
 * {@link customFieldFilter} for `?cf.<key>=…` list filters. Nothing here throws on any input.
 *
 * Value shapes per type (JSON):
 * | type        | value                                                                 |
 * | ----------- | --------------------------------------------------------------------- |
 * | text        | non-empty string, ≤ 10,000 characters, no NUL, no unpaired surrogate  |
 * | number      | finite JSON number                                                    |
 * | decimal     | decimal string, ≤ 28 integer and ≤ 10 fraction digits (numeric(38,10): the kit's decimal rule); money is never a float |
 * | date        | `YYYY-MM-DD`, a day that exists                                        |
 * | boolean     | true / false                                                          |
 * | select      | one of the definition's options                                       |
 * | multiselect | array of distinct options                                             |
 * | url         | absolute http(s) URL, ≤ 2,048 characters, kept as sent                |
 * | email       | the suite's one e-mail rule (schemas.ts `emailSchema`): trimmed, lower-cased |
 */

/** A refused custom field value: `field` is `customFields.<key>` (or `customFields` for the whole object). */
export interface CustomFieldViolation {
  field: string;
  message: string;
}

/** The stored `customFields` object after a write, or every violation of it. */
export type CustomFieldsResult = { values: Record<string, unknown> } | { errors: CustomFieldViolation[] };

/** Longest text value, in UTF-16 code units (JavaScript string length). */
export const CUSTOM_TEXT_MAX = 10_000;
/** Longest URL value. */
export const CUSTOM_URL_MAX = 2_048;

const decimal = fieldSchema({ kind: 'decimal', precision: 38, scale: 10 });
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Validates the `customFields` of one write against the object's `definitions` (all of them,
 * inactive ones included, as `activeDefinitions` in contacts-svc loads them).
 *
 * - `input`: the `customFields` object the caller sent; `undefined`/`null` = not sent (no change).
 *   Anything but a plain object is refused (`customFields`: "must be an object").
 * - `existing`: the stored object on update, `null` on create. Input keys replace stored ones; a
 *   `null` value removes the key (also a stored key whose definition is gone); other stored keys
 *   stay as they are, even those of deleted definitions (an unrelated write never fails on them).
 * - A key without a definition → `customFields.<key>` "no such custom field".
 * - An inactive definition accepts no new value ("inactive: accepts no new values"), but a value
 *   equal to the stored one passes (clients send back what they read).
 * - Create only: each active definition's `defaultValue` is applied when the key is absent.
 * - Each active `required` definition must have a value after the write ("is required").
 * - Type rules: see the module table; values are normalised (e-mail lower-cased).
 *
 * Returns `{ values }` — the object to store — or `{ errors }`, each naming `customFields.<key>`.
 */
export function validateCustomFields(
  definitions: readonly CustomFieldDefinitionValue[],
  input: unknown,
  existing: Record<string, unknown> | null,
): CustomFieldsResult {
  if (input !== undefined && input !== null && !isPlainObject(input)) {
    return { errors: [{ field: 'customFields', message: 'must be an object' }] };
  }
  const byKey = new Map<string, CustomFieldDefinitionValue>();
  for (const d of definitions) if (!byKey.get(d.key)?.active) byKey.set(d.key, d); // an active one wins a (never expected) tie
  // Maps, not objects: keys such as `__proto__` or `constructor` are data here, never prototype lookups
  const stored = new Map(existing && isPlainObject(existing) ? Object.entries(existing) : []);
  const out = new Map(stored);
  const errors: CustomFieldViolation[] = [];
  const refuse = (key: string, message: string) => errors.push({ field: `customFields.${key}`, message });

  for (const [key, raw] of Object.entries((input ?? {}) as Record<string, unknown>)) {
    const definition = byKey.get(key);
    if (raw === null) {
      if (definition || stored.has(key)) out.delete(key);
      else refuse(key, 'no such custom field');
      continue;
    }
    if (!definition) {
      refuse(key, 'no such custom field');
      continue;
    }
    const checked = checkValue(definition, raw);
    if ('message' in checked) {
      refuse(key, checked.message);
      continue;
    }
    if (!definition.active && !(stored.has(key) && sameJson(stored.get(key), checked.value))) {
      refuse(key, 'inactive: accepts no new values');
      continue;
    }
    out.set(key, checked.value);
  }

  if (existing === null) {
    for (const d of byKey.values()) {
      if (!d.active || out.has(d.key) || d.defaultValue === null || d.defaultValue === undefined) continue;
      const checked = checkValue(d, d.defaultValue);
      if ('value' in checked) out.set(d.key, checked.value); // validated when the definition was written
    }
  }
  for (const d of byKey.values()) {
    if (d.active && d.required && !out.has(d.key) && !errors.some((e) => e.field === `customFields.${d.key}`)) refuse(d.key, 'is required');
  }
  return errors.length ? { errors } : { values: Object.fromEntries(out) };
}

/**
 * One value checked against its definition's type (see the module table): `{ value }` normalised,
 * or `{ message }` saying what the type needs. Used for record values and for a definition's own
 * `defaultValue`. Never throws.
 */
export function checkValue(definition: Pick<CustomFieldDefinitionValue, 'type' | 'options'>, raw: unknown): { value: unknown } | { message: string } {
  const type = definition.type;
  if (type === null) return { message: 'the field has no type' };
  const ok = (value: unknown) => ({ value });
  const no = (message: string) => ({ message });
  switch (type) {
    case 'text':
      if (typeof raw !== 'string' || raw === '') return no('must be a non-empty string');
      if (raw.length > CUSTOM_TEXT_MAX) return no(`must be at most ${CUSTOM_TEXT_MAX} characters`);
      return raw.includes('\u0000') || !raw.isWellFormed() ? no('must not contain NUL characters or unpaired surrogates') : ok(raw);
    case 'number':
      return typeof raw === 'number' && Number.isFinite(raw) ? ok(raw) : no('must be a finite number');
    case 'decimal':
      return typeof raw === 'string' && raw !== '' && decimal.safeParse(raw).success
        ? ok(raw)
        : no('must be a decimal string such as "1250.00" (at most 28 integer and 10 fraction digits)');
    case 'date':
      return typeof raw === 'string' && isDate(raw) ? ok(raw) : no('must be a date YYYY-MM-DD that exists');
    case 'boolean':
      return typeof raw === 'boolean' ? ok(raw) : no('must be true or false');
    case 'select':
      return typeof raw === 'string' && definition.options.includes(raw) ? ok(raw) : no(`must be one of ${definition.options.join(', ')}`);
    case 'multiselect': {
      if (!Array.isArray(raw) || !raw.every((v) => typeof v === 'string' && definition.options.includes(v)))
        return no(`must be a list of options among ${definition.options.join(', ')}`);
      return new Set(raw).size === raw.length ? ok([...raw]) : no('must not repeat an option');
    }
    case 'url':
      // URL.canParse accepts a NUL in the path, jsonb cannot store it
      return typeof raw === 'string' && raw.length <= CUSTOM_URL_MAX && !raw.includes('\u0000') && raw.isWellFormed() && isHttpUrl(raw)
        ? ok(raw)
        : no(`must be an absolute http(s) URL of at most ${CUSTOM_URL_MAX} characters`);
    case 'email': {
      const parsed = emailSchema.safeParse(raw);
      return parsed.success ? ok(parsed.data) : no('must be an e-mail address');
    }
    default:
      return no(`unknown type ${String(type satisfies never)}`);
  }
}

/**
 * The list filter `?cf.<key>=<raw>` as a JSONB containment object for
 * `custom_fields @> $1::jsonb` (parameterised; served by a GIN `jsonb_path_ops` index):
 * `{ contains: { "<key>": value } }`, for multiselect `{ "<key>": [value] }` (records having that
 * option among theirs). `raw` is parsed by the type: number (JSON number syntax), boolean
 * (`true`/`false`), e-mail (normalised as stored), the others as strings that must be valid values
 * (select: one of the options). Matching is exact on the stored JSON: a decimal `1.5` does not
 * match a stored `"1.50"`. Inactive definitions filter too (their values are kept).
 * Returns `{ error }` (for a 400 naming `cf.<key>`) when `raw` is no value of the type.
 *
 * (The containment object is wrapped in `contains` so that a field keyed `error` cannot be
 * mistaken for a refusal.)
 */
export function customFieldFilter(
  definition: Pick<CustomFieldDefinitionValue, 'key' | 'type' | 'options'>,
  raw: string,
): { contains: Record<string, unknown> } | { error: string } {
  let value: unknown = raw;
  if (definition.type === 'number') {
    if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) return { error: 'must be a number' };
    value = Number(raw);
  } else if (definition.type === 'boolean') {
    if (raw !== 'true' && raw !== 'false') return { error: 'must be true or false' };
    value = raw === 'true';
  } else if (definition.type === 'multiselect') {
    return definition.options.includes(raw) ? { contains: { [definition.key]: [raw] } } : { error: `must be one of ${definition.options.join(', ')}` };
  }
  const checked = checkValue(definition, value);
  if ('message' in checked) return { error: checked.message };
  const contains: Record<string, unknown> = {};
  Object.defineProperty(contains, definition.key, { value: checked.value, enumerable: true, writable: true, configurable: true });
  return { contains };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d); // not Date.UTC: it maps years 0–99 to 1900–1999
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const url = new URL(text);
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every custom field type, in proto order. */
export const CUSTOM_FIELD_TYPES: readonly CustomFieldType[] = ['text', 'number', 'decimal', 'date', 'boolean', 'select', 'multiselect', 'url', 'email'];
