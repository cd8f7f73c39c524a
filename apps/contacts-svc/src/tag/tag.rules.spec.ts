import { describe, expect, it } from '@jest/globals';
import { enumNames, tagRuleV1 } from '@crm/contracts';
import { assertTagRuleFits, normaliseColor, TAG_RULE_FIELDS, watchedValues } from './tag.rules.ts';

const violationsOf = (fn: () => void): { field: string }[] => {
  try {
    fn();
  } catch (error) {
    return (error as { violations: { field: string }[] }).violations;
  }
  throw new Error('expected a violation');
};

describe('normaliseColor', () => {
  it('stores #rrggbb lower-cased and keeps no color as none', () => {
    expect(normaliseColor('#1E90FF')).toBe('#1e90ff');
    expect(normaliseColor('#a0b1c2')).toBe('#a0b1c2');
    expect(normaliseColor(null)).toBeNull();
  });
  it.each(['red', '#fff', '1e90ff', '#1e90fg', '#1e90ff0', ' #1e90ff'])('refuses %j naming color', (color) => {
    expect(() => normaliseColor(color)).toThrow(
      expect.objectContaining({ kind: 'invalid_argument', violations: [expect.objectContaining({ field: 'color' })] }),
    );
  });
});

describe('TAG_RULE_FIELDS', () => {
  it('lists exactly the proto enum’s fields, each under at least one object', () => {
    const listed = new Set(Object.values(TAG_RULE_FIELDS).flat());
    expect([...listed].sort()).toEqual(enumNames(tagRuleV1.TagRuleField).sort());
  });
  it('has an object for each proto TagRuleObject', () => {
    expect(Object.keys(TAG_RULE_FIELDS).sort()).toEqual(enumNames(tagRuleV1.TagRuleObject).sort());
  });
});

describe('assertTagRuleFits', () => {
  const rule = { object: 'company', field: 'account_type', value: 'customer', tagId: '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10' };

  it('accepts a field of the object, and true/false in any case for a yes/no field', () => {
    expect(() => assertTagRuleFits(rule)).not.toThrow();
    expect(() => assertTagRuleFits({ ...rule, object: 'contact', field: 'is_decision_maker', value: 'TRUE' })).not.toThrow();
    expect(() => assertTagRuleFits({ ...rule, object: 'contact', field: 'source', value: 'referral' })).not.toThrow();
  });
  it('refuses a field the object does not have, naming field', () => {
    expect(violationsOf(() => assertTagRuleFits({ ...rule, object: 'contact', field: 'account_type' }))).toEqual([expect.objectContaining({ field: 'field' })]);
    expect(violationsOf(() => assertTagRuleFits({ ...rule, field: 'is_decision_maker', value: 'true' }))).toEqual([
      expect.objectContaining({ field: 'field' }),
    ]);
  });
  it('refuses a yes/no value other than true or false, naming value', () => {
    expect(violationsOf(() => assertTagRuleFits({ ...rule, object: 'contact', field: 'is_decision_maker', value: 'yes' }))).toEqual([
      expect.objectContaining({ field: 'value' }),
    ]);
  });
  it('lists every missing required field', () => {
    expect(violationsOf(() => assertTagRuleFits({ object: null, field: null, value: 'x', tagId: null })).map((v) => v.field)).toEqual([
      'object',
      'field',
      'tagId',
    ]);
  });
});

describe('watchedValues', () => {
  const company = { name: 'Acme', accountType: 'customer', status: null, priority: 'high', rating: '', source: 'referral', industry: 'Retail' };

  it('on create: every watched field with a value, as text, in table order', () => {
    expect(watchedValues('company', company, new Set(), true)).toEqual([
      { field: 'account_type', value: 'customer' },
      { field: 'priority', value: 'high' },
      { field: 'source', value: 'referral' },
      { field: 'industry', value: 'Retail' },
    ]);
  });
  it('on update: only the changed watched fields (camelCase keys)', () => {
    expect(watchedValues('company', company, new Set(['accountType', 'name', 'status']), false)).toEqual([{ field: 'account_type', value: 'customer' }]);
    expect(watchedValues('company', company, new Set(['name']), false)).toEqual([]);
  });
  it('compares booleans as true/false, and ignores what is not a scalar', () => {
    expect(watchedValues('contact', { isDecisionMaker: false, preferredContactMethod: 'email', source: ['x'] }, new Set(['isDecisionMaker']), false)).toEqual([
      { field: 'is_decision_maker', value: 'false' },
    ]);
    expect(watchedValues('contact', { isDecisionMaker: true, preferredContactMethod: 'email', source: { a: 1 } }, new Set(), true)).toEqual([
      { field: 'preferred_contact_method', value: 'email' },
      { field: 'is_decision_maker', value: 'true' },
    ]);
  });
});
