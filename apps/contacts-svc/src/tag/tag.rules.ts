import { DomainError, type FieldViolation } from '@crm/platform';

/** The kinds of record a tag rule watches (REST names of `TagRuleObject`). */
export type TagRuleObjectName = 'company' | 'contact';

/**
 * The one list of what a tag rule may watch: for each object, the fields (REST names of
 * `TagRuleField`, snake_case like the proto fields) whose values can assign a tag. The proto enum
 * holds their union; this table decides which belongs to which object. A field of the record's
 * table named here in camelCase (`accountType`) is the value compared.
 */
export const TAG_RULE_FIELDS = {
  company: ['account_type', 'status', 'priority', 'rating', 'source', 'industry'],
  contact: ['source', 'preferred_contact_method', 'is_decision_maker'],
} as const satisfies Record<TagRuleObjectName, readonly string[]>;

/** Yes/no fields: a rule's value for them is `true` or `false` (any case). */
const YES_NO_FIELDS: ReadonlySet<string> = new Set(['is_decision_maker']);

const COLOR = /^#[0-9a-f]{6}$/i;

/**
 * A tag's color as stored: `#rrggbb` lower-cased (`#1E90FF` → `#1e90ff`); null stays null (no
 * color). Throws INVALID_ARGUMENT `VALIDATION_FAILED` naming `color` for anything else (`red`,
 * `#fff`, `1e90ff`).
 */
export function normaliseColor(color: string | null): string | null {
  if (color === null) return null;
  if (!COLOR.test(color)) {
    throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid tag', [{ field: 'color', message: 'must be a color #rrggbb such as #1e90ff' }]);
  }
  return color.toLowerCase();
}

/** A tag rule's fields as the records kit holds them (enums as REST names, null = absent). */
export interface TagRuleValues {
  object: string | null;
  field: string | null;
  value: string;
  tagId: string | null;
}

/**
 * The rules of a tag rule's own fields: `object`, `field` and `tagId` are required, `field` must be
 * one of the object's ({@link TAG_RULE_FIELDS}), and a yes/no field's `value` is `true` or `false`.
 * Throws INVALID_ARGUMENT `VALIDATION_FAILED` listing every violation by field name.
 */
export function assertTagRuleFits(rule: TagRuleValues): void {
  const violations: FieldViolation[] = [];
  if (rule.object === null) violations.push({ field: 'object', message: 'is required' });
  if (rule.field === null) violations.push({ field: 'field', message: 'is required' });
  if (rule.tagId === null) violations.push({ field: 'tagId', message: 'is required' });
  if (rule.object !== null && rule.field !== null) {
    const fields: readonly string[] = TAG_RULE_FIELDS[rule.object as TagRuleObjectName] ?? [];
    if (!fields.includes(rule.field)) violations.push({ field: 'field', message: `not a field of ${rule.object}: one of ${fields.join(', ')}` });
  }
  if (rule.field !== null && YES_NO_FIELDS.has(rule.field) && !/^(true|false)$/i.test(rule.value)) {
    violations.push({ field: 'value', message: `${rule.field} is yes/no: true or false` });
  }
  if (violations.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid tag rule', violations);
}

/** A watched field and its value as text, as a rule's `value` is compared with it. */
export interface WatchedValue {
  /** REST name of the field (`account_type`). */
  field: string;
  /** The value as text: enums as their lower-case names, booleans `true`/`false`, numbers in decimal. */
  value: string;
}

/**
 * Which of `object`'s watched fields ({@link TAG_RULE_FIELDS}) can trigger rules in this write, with
 * their values as text: on create every watched field that has a value; on update only those in
 * `changed` (field-table keys, camelCase: `accountType`) that have one. Absent values (null,
 * undefined, `''`) and values that are not scalars trigger nothing.
 */
export function watchedValues(object: TagRuleObjectName, values: Record<string, unknown>, changed: ReadonlySet<string>, isCreate: boolean): WatchedValue[] {
  return TAG_RULE_FIELDS[object].flatMap((field) => {
    const key = camelCase(field);
    if (!isCreate && !changed.has(key)) return [];
    const value = asText(values[key]);
    return value === undefined ? [] : [{ field, value }];
  });
}

/** A scalar value as text (see {@link WatchedValue}); undefined when absent or not a scalar. */
function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** `preferred_contact_method` → `preferredContactMethod` (the inverse of the kit's snakeCase). */
function camelCase(field: string): string {
  return field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
