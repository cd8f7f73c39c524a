import { checkValue, type CustomFieldDefinitionValue } from '@crm/contracts';
import { DomainError, type FieldViolation } from '@crm/platform';

/** Custom field keys: lower-case letter first, then lower-case letters, digits, `_`; at most 63 characters. */
export const CUSTOM_FIELD_KEY = /^[a-z][a-z0-9_]{0,62}$/;

/** The definition fields that never change after create: their meaning for stored values would. */
export const IMMUTABLE_FIELDS = ['object', 'key', 'type'] as const;

/**
 * A custom field definition's own rules, after the kit normalised its fields. `changed` names the
 * fields this write changes; `isCreate` is false for updates. Checks:
 * - `object` and `type` are set; `key` matches {@link CUSTOM_FIELD_KEY};
 * - on update, `object`, `key` and `type` are unchanged ("cannot be changed after create");
 * - `options`: select and multiselect need at least one, all distinct; other types have none;
 * - `defaultValue`, when set, is a valid value of the type (`checkValue`, the values' own rule).
 * Throws INVALID_ARGUMENT `VALIDATION_FAILED` (400) listing every violation by field.
 */
export function assertValidDefinition(values: CustomFieldDefinitionValue, changed: ReadonlySet<string>, isCreate: boolean): void {
  const violations: FieldViolation[] = [];
  const refuse = (field: string, message: string) => violations.push({ field, message });
  if (!isCreate) for (const field of IMMUTABLE_FIELDS) if (changed.has(field)) refuse(field, 'cannot be changed after create');
  if (values.object === null) refuse('object', 'is required');
  if (!CUSTOM_FIELD_KEY.test(values.key)) refuse('key', 'must match ^[a-z][a-z0-9_]{0,62}$ (lower-case letter, then letters, digits, _)');
  if (values.type === null) refuse('type', 'is required');
  else {
    const choice = values.type === 'select' || values.type === 'multiselect';
    if (choice && values.options.length === 0) refuse('options', `a ${values.type} field needs at least one option`);
    else if (choice && new Set(values.options).size !== values.options.length) refuse('options', 'must not repeat an option');
    else if (!choice && values.options.length > 0) refuse('options', 'only select and multiselect fields have options');
    else if (values.defaultValue !== null && values.defaultValue !== undefined) {
      const checked = checkValue(values, values.defaultValue);
      if ('message' in checked) refuse('defaultValue', checked.message);
    }
  }
  if (violations.length) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'invalid custom field', violations);
}
