import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { CustomFieldDefinitionValue, CustomFieldType } from './custom-field.record.ts';
import { CUSTOM_FIELD_TYPES, customFieldFilter, validateCustomFields } from './custom-fields.ts';

const def = (key: string, type: CustomFieldType, extra: Partial<CustomFieldDefinitionValue> = {}): CustomFieldDefinitionValue => ({
  object: 'company',
  key,
  label: key,
  type,
  options: type === 'select' || type === 'multiselect' ? ['gold', 'silver', 'bronze'] : [],
  required: false,
  defaultValue: null,
  description: null,
  active: true,
  ...extra,
});
const ALL = CUSTOM_FIELD_TYPES.map((t) => def(`f_${t}`, t));
const fieldsOf = (r: ReturnType<typeof validateCustomFields>) => ('errors' in r ? r.errors.map((e) => e.field) : []);

/** A valid value of each type, in its stored (normalised) form. */
const validValue: Record<CustomFieldType, fc.Arbitrary<unknown>> = {
  text: fc.string({ minLength: 1, maxLength: 50 }).filter((s) => !s.includes('\u0000') && s.isWellFormed()),
  number: fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  decimal: fc
    .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 28n - 1n }), fc.option(fc.stringMatching(/^\d{1,10}$/), { nil: undefined }))
    .map(([neg, int, frac]) => `${neg ? '-' : ''}${int}${frac === undefined ? '' : `.${frac}`}`),
  date: fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
  boolean: fc.boolean(),
  select: fc.constantFrom('gold', 'silver', 'bronze'),
  multiselect: fc.subarray(['gold', 'silver', 'bronze']),
  url: fc.webUrl({ validSchemes: ['http', 'https'] }).filter((u) => u.length <= 2048),
  email: fc.constantFrom('ada@example.com', 'grace.hopper@navy.mil', 'x_y+z@sub.example.org'),
};

describe('validateCustomFields', () => {
  it('accepts one valid value of every type and stores it as sent', () => {
    const input = {
      f_text: 'Hi',
      f_number: 1.5,
      f_decimal: '1250.00',
      f_date: '2024-02-29',
      f_boolean: false,
      f_select: 'gold',
      f_multiselect: ['gold', 'bronze'],
      f_url: 'https://acme.com/x?y=1',
      f_email: 'ada@example.com',
    };
    expect(validateCustomFields(ALL, input, null)).toEqual({ values: input });
  });

  it('refuses a wrong value of every type, naming customFields.<key>', () => {
    const input = {
      f_text: 'a\u0000b',
      f_number: '1',
      f_decimal: 1.5,
      f_date: '2023-02-29',
      f_boolean: 'true',
      f_select: 'platinum',
      f_multiselect: ['gold', 'gold'],
      f_url: 'ftp://acme.com',
      f_email: 'not-an-email',
    };
    expect(fieldsOf(validateCustomFields(ALL, input, null)).sort()).toEqual(
      Object.keys(input)
        .map((k) => `customFields.${k}`)
        .sort(),
    );
  });

  it('keeps decimals within numeric(38,10) and never as floats', () => {
    const d = [def('amount', 'decimal')];
    expect(validateCustomFields(d, { amount: `${'9'.repeat(28)}.${'9'.repeat(10)}` }, null)).toHaveProperty('values');
    expect(fieldsOf(validateCustomFields(d, { amount: `${'9'.repeat(29)}` }, null))).toEqual(['customFields.amount']);
    expect(fieldsOf(validateCustomFields(d, { amount: '1.12345678901' }, null))).toEqual(['customFields.amount']);
    expect(fieldsOf(validateCustomFields(d, { amount: '1e5' }, null))).toEqual(['customFields.amount']);
  });

  it('lower-cases e-mails with the kit rule and limits text and URLs', () => {
    const defs = [def('mail', 'email'), def('note', 'text'), def('site', 'url')];
    expect(validateCustomFields(defs, { mail: ' Ada@Example.COM ' }, null)).toEqual({ values: { mail: 'ada@example.com' } });
    expect(fieldsOf(validateCustomFields(defs, { note: 'x'.repeat(10_001), site: `https://a.com/${'x'.repeat(2040)}` }, null))).toEqual([
      'customFields.note',
      'customFields.site',
    ]);
  });

  it('applies defaults on create only, then checks required fields', () => {
    const defs = [def('tier', 'select', { defaultValue: 'gold', required: true }), def('score', 'number', { required: true })];
    expect(validateCustomFields(defs, { score: 3 }, null)).toEqual({ values: { tier: 'gold', score: 3 } });
    expect(validateCustomFields(defs, {}, null)).toEqual({ errors: [{ field: 'customFields.score', message: 'is required' }] });
    // update: no default; removing a required value is refused
    expect(fieldsOf(validateCustomFields(defs, { tier: null }, { tier: 'silver', score: 1 }))).toEqual(['customFields.tier']);
  });

  it('merges an update into the stored object: keys replace, null removes, others stay', () => {
    const defs = [def('a', 'text'), def('b', 'number')];
    expect(validateCustomFields(defs, { a: 'new', b: null }, { a: 'old', b: 1, gone: 'kept' })).toEqual({ values: { a: 'new', gone: 'kept' } });
    expect(validateCustomFields(defs, { gone: null }, { gone: 'x' })).toEqual({ values: {} });
    expect(validateCustomFields(defs, undefined, { a: 'x' })).toEqual({ values: { a: 'x' } });
  });

  it('refuses new values of inactive fields but keeps and accepts back what is stored', () => {
    const defs = [def('legacy', 'text', { active: false, required: true, defaultValue: 'x' })];
    expect(validateCustomFields(defs, { legacy: 'new' }, null)).toEqual({
      errors: [{ field: 'customFields.legacy', message: 'inactive: accepts no new values' }],
    });
    expect(validateCustomFields(defs, {}, null)).toEqual({ values: {} }); // no default, not required while inactive
    expect(validateCustomFields(defs, { legacy: 'old' }, { legacy: 'old' })).toEqual({ values: { legacy: 'old' } });
    expect(validateCustomFields(defs, { legacy: null }, { legacy: 'old' })).toEqual({ values: {} });
  });

  it('refuses a non-object customFields and prototype-looking keys without touching prototypes', () => {
    expect(validateCustomFields(ALL, [1], null)).toEqual({ errors: [{ field: 'customFields', message: 'must be an object' }] });
    const r = validateCustomFields(ALL, JSON.parse('{"__proto__": {"x": 1}, "constructor": 1}'), null);
    expect(fieldsOf(r)).toEqual(['customFields.__proto__', 'customFields.constructor']);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('always passes valid values and round-trips them (property)', () => {
    const entries = fc.record(Object.fromEntries(ALL.map((d) => [d.key, validValue[d.type!]])), { requiredKeys: [] });
    fc.assert(
      fc.property(entries, (input) => {
        const result = validateCustomFields(ALL, input, null);
        expect(result).toEqual({ values: input });
        if (!('values' in result)) return;
        const stored = JSON.parse(JSON.stringify(result.values)) as Record<string, unknown>;
        expect(validateCustomFields(ALL, stored, stored)).toEqual({ values: stored });
      }),
    );
  });

  it('never throws on junk: always values or errors (property)', () => {
    const junk = fc.oneof(fc.jsonValue(), fc.anything(), fc.dictionary(fc.constantFrom(...ALL.map((d) => d.key), 'x', '__proto__'), fc.jsonValue()));
    fc.assert(
      fc.property(junk, fc.option(fc.dictionary(fc.string(), fc.jsonValue()), { nil: null }), (input, existing) => {
        const result = validateCustomFields(ALL, input, existing);
        expect('values' in result !== 'errors' in result).toBe(true);
      }),
    );
  });

  it('always refuses keys without a definition (property)', () => {
    const unknownKey = fc.string({ minLength: 1 }).filter((k) => !ALL.some((d) => d.key === k));
    fc.assert(
      fc.property(
        unknownKey,
        fc.jsonValue().filter((v) => v !== null),
        (key, value) => {
          const input: Record<string, unknown> = {};
          Object.defineProperty(input, key, { value, enumerable: true });
          expect(fieldsOf(validateCustomFields(ALL, input, null))).toContain(`customFields.${key}`);
        },
      ),
    );
  });
});

describe('customFieldFilter', () => {
  it('turns ?cf.<key>=<raw> into a JSONB containment object, typed by the definition', () => {
    expect(customFieldFilter(def('score', 'number'), '4.5')).toEqual({ contains: { score: 4.5 } });
    expect(customFieldFilter(def('vip', 'boolean'), 'true')).toEqual({ contains: { vip: true } });
    expect(customFieldFilter(def('tier', 'select'), 'gold')).toEqual({ contains: { tier: 'gold' } });
    expect(customFieldFilter(def('tags', 'multiselect'), 'gold')).toEqual({ contains: { tags: ['gold'] } });
    expect(customFieldFilter(def('mail', 'email'), 'Ada@Example.com')).toEqual({ contains: { mail: 'ada@example.com' } });
    expect(customFieldFilter(def('error', 'text'), 'x')).toEqual({ contains: { error: 'x' } });
  });

  it('refuses raw values the type cannot hold', () => {
    expect(customFieldFilter(def('score', 'number'), 'abc')).toHaveProperty('error');
    expect(customFieldFilter(def('score', 'number'), '')).toHaveProperty('error');
    expect(customFieldFilter(def('vip', 'boolean'), 'yes')).toHaveProperty('error');
    expect(customFieldFilter(def('tier', 'select'), 'platinum')).toHaveProperty('error');
    expect(customFieldFilter(def('day', 'date'), '2023-02-30')).toHaveProperty('error');
  });

  it('never throws (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL), fc.string(), (d, raw) => {
        const r = customFieldFilter(d, raw);
        expect('contains' in r !== 'error' in r).toBe(true);
      }),
    );
  });
});
