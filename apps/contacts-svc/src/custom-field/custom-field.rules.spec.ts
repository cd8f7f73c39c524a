import { describe, expect, it } from '@jest/globals';
import type { CustomFieldDefinitionValue } from '@crm/contracts';
import { assertValidDefinition } from './custom-field.rules.ts';

const base: CustomFieldDefinitionValue = {
  object: 'company',
  key: 'tier',
  label: 'Tier',
  type: 'select',
  options: ['gold', 'silver'],
  required: false,
  defaultValue: null,
  description: null,
  active: true,
};
const fieldsOf = (values: Partial<CustomFieldDefinitionValue>, changed: string[] = [], isCreate = true): string[] => {
  try {
    assertValidDefinition({ ...base, ...values }, new Set(changed), isCreate);
    return [];
  } catch (error) {
    return (error as { violations: { field: string }[] }).violations.map((v) => v.field);
  }
};

describe('assertValidDefinition', () => {
  it('accepts a valid select field with a valid default', () => {
    expect(fieldsOf({ defaultValue: 'gold' })).toEqual([]);
    expect(fieldsOf({ type: 'decimal', options: [], defaultValue: '10.50' })).toEqual([]);
  });

  it('refuses keys outside ^[a-z][a-z0-9_]{0,62}$, naming key', () => {
    for (const key of ['Tier', '1tier', '_tier', 'tier-x', 't'.repeat(64), '']) expect(fieldsOf({ key })).toEqual(['key']);
    expect(fieldsOf({ key: `t${'_'.repeat(62)}` })).toEqual([]);
  });

  it('needs options for select and multiselect (non-empty, distinct) and forbids them otherwise, naming options', () => {
    expect(fieldsOf({ options: [] })).toEqual(['options']);
    expect(fieldsOf({ type: 'multiselect', options: ['a', 'a'] })).toEqual(['options']);
    expect(fieldsOf({ type: 'text', options: ['a'] })).toEqual(['options']);
  });

  it('refuses a default that is no value of the type, naming defaultValue', () => {
    expect(fieldsOf({ defaultValue: 'platinum' })).toEqual(['defaultValue']);
    expect(fieldsOf({ type: 'decimal', options: [], defaultValue: 10.5 })).toEqual(['defaultValue']);
    expect(fieldsOf({ type: 'date', options: [], defaultValue: '2023-02-29' })).toEqual(['defaultValue']);
  });

  it('requires object and type', () => {
    expect(fieldsOf({ object: null, type: null, options: [] })).toEqual(['object', 'type']);
  });

  it('refuses changing object, key or type after create, allowing other changes', () => {
    expect(fieldsOf({}, ['key', 'type', 'object', 'label'], false)).toEqual(['object', 'key', 'type']);
    expect(fieldsOf({}, ['label', 'options', 'active'], false)).toEqual([]);
    expect(fieldsOf({}, ['key', 'type', 'object'], true)).toEqual([]);
  });
});
