import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import { companyRecord } from './company.record.ts';
import { contactRecord } from './contact.record.ts';
import { e164, fieldSchema, formatAmount, fromProto, moneySchema, toProto, type FieldSpec } from './index.ts';

const parse = (spec: FieldSpec, value: unknown) => fieldSchema(spec).safeParse(value);
const fieldsOf = (r: ReturnType<typeof parse>) => (r.success ? [] : r.error.issues.map((i) => i.path.join('.')));

describe('the kit rules', () => {
  it('trims text, lower-cases a domain and an e-mail, and empties optional text to null', () => {
    expect(parse(companyRecord.fields.name, '  Acme  ')).toMatchObject({ data: 'Acme' });
    expect(parse(companyRecord.fields.domain, 'ACME.com')).toMatchObject({ data: 'acme.com' });
    expect(parse(contactRecord.fields.email, ' Ada@Example.COM ')).toMatchObject({ data: 'ada@example.com' });
    expect(parse(companyRecord.fields.industry, '   ')).toMatchObject({ data: null });
    expect(parse(contactRecord.fields.firstName, '')).toMatchObject({ data: '' });
  });

  it('refuses what a field cannot hold, naming the part', () => {
    expect(fieldsOf(parse(companyRecord.fields.name, ' '))).toEqual(['']);
    expect(fieldsOf(parse(companyRecord.fields.domain, 'not a domain'))).toEqual(['']);
    expect(fieldsOf(parse(companyRecord.fields.employees, -1))).toEqual(['']);
    expect(fieldsOf(parse(contactRecord.fields.phone, 'call me'))).toEqual(['']);
    expect(fieldsOf(parse(companyRecord.fields.annualRevenue, { amount: '1e5', currency: 'usd' }))).toEqual(['amount', 'currency']);
  });

  it('keeps NUL and unpaired surrogates out of text (Postgres and UTF-8 cannot hold them)', () => {
    expect(parse(companyRecord.fields.name, 'Ac\u0000me').success).toBe(false);
    expect(parse(companyRecord.fields.industry, 'x\uD800y').success).toBe(false);
    expect(parse(companyRecord.fields.industry, 'emoji \u{1F600}').success).toBe(true);
  });

  it('accepts only ISO 4217 currencies that exist, upper case', () => {
    expect(moneySchema.safeParse({ amount: '1.5', currency: 'EUR' })).toMatchObject({ data: { amount: '1.50', currency: 'EUR' } });
    expect(moneySchema.safeParse({ amount: '1.5', currency: 'eur' }).success).toBe(false);
    expect(moneySchema.safeParse({ amount: '1.5', currency: 'XYZ' }).success).toBe(false);
  });

  it('formats every amount it accepts with 2–4 fraction digits and the same value (never rounds)', () => {
    const amount = fc
      .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 15n - 1n }), fc.option(fc.stringMatching(/^\d{1,4}$/), { nil: undefined }))
      .map(([negative, int, frac]) => `${negative ? '-' : ''}${int}${frac === undefined ? '' : `.${frac}`}`);
    fc.assert(
      fc.property(amount, (a) => {
        const parsed = moneySchema.safeParse({ amount: a, currency: 'USD' });
        expect(parsed.success).toBe(true);
        const out = formatAmount(a);
        expect(new Decimal(out).equals(new Decimal(a))).toBe(true);
        expect(out).toMatch(/^-?\d+\.\d{2,4}$/);
      }),
    );
  });

  it('round-trips every company value through its proto form', () => {
    const text = (max: number) =>
      fc.option(
        fc.string({ minLength: 1, maxLength: max }).filter((s) => s.trim() === s && s !== ''),
        { nil: null },
      );
    const company = fc.record({
      name: fc.string({ minLength: 1, maxLength: 200 }),
      industry: text(100),
      employees: fc.option(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { nil: null }),
      annualRevenue: fc.option(
        fc.record({ amount: fc.constantFrom('0.00', '12.50', '-3.1234', '1100040000.00'), currency: fc.constantFrom('USD', 'EUR', 'JPY') }),
        {
          nil: null,
        },
      ),
      address: fc.option(
        fc.record({
          street: text(200),
          city: fc.string({ minLength: 1, maxLength: 10 }).filter((s) => s.trim() === s && s !== ''),
          region: text(100),
          postalCode: text(20),
          country: text(100),
        }),
        {
          nil: null,
        },
      ),
    });
    fc.assert(
      fc.property(company, (values) => {
        for (const [key, value] of Object.entries(values)) {
          const spec = companyRecord.fields[key as keyof typeof values];
          expect(fromProto(spec, toProto(spec, value))).toEqual(value);
        }
      }),
    );
  });
});

describe('text formats', () => {
  const parseAs = (format: Extract<FieldSpec, { kind: 'text' }>['format'], value: unknown) => fieldSchema({ kind: 'text', max: 2048, format }).safeParse(value);

  it('accept phone numbers in international format of a possible length, unchanged (the service stores E.164)', () => {
    expect(parseAs('phone', ' +1 (415) 555-0100 ')).toEqual({ success: true, data: '+1 (415) 555-0100' });
    expect(e164('+1 (415) 555-0100')).toBe('+14155550100');
    expect(e164('+49 30 1234567')).toBe('+49301234567');
    for (const bad of ['+1 555 0100', '(415) 555-0100', '0049 30 1234567', '+', 'call me', '+1 415 555 0100 ext'])
      expect({ bad, ok: parseAs('phone', bad).success }).toEqual({ bad, ok: false });
    expect(parseAs('phone', '')).toEqual({ success: true, data: null });
    expect(parseAs('phone', null)).toEqual({ success: true, data: null });
  });

  it('store URLs, language tags, time zones and countries canonical', () => {
    expect(parseAs('url', 'https://Acme.com')).toEqual({ success: true, data: 'https://acme.com/' });
    expect(parseAs('language', 'en-us')).toEqual({ success: true, data: 'en-US' });
    expect(parseAs('timezone', 'europe/berlin')).toEqual({ success: true, data: 'Europe/Berlin' });
    expect(parseAs('country', 'de')).toEqual({ success: true, data: 'DE' });
    for (const [format, bad] of [
      ['url', 'ftp://acme.com'],
      ['url', 'acme.com'],
      ['language', 'english!'],
      ['timezone', 'Mars/Olympus_Mons'],
      ['country', 'XX'],
      ['country', 'DEU'],
    ] as const) {
      expect({ format, bad, ok: parseAs(format, bad).success }).toEqual({ format, bad, ok: false });
    }
  });

  it('never throw on any string, and whatever they accept they accept again unchanged (canonical is a fixed point)', () => {
    for (const format of ['url', 'language', 'timezone', 'country', 'phone'] as const) {
      fc.assert(
        fc.property(fc.string({ maxLength: 60 }), (text) => {
          const once = parseAs(format, text);
          if (once.success && typeof once.data === 'string') expect(parseAs(format, once.data)).toEqual(once);
        }),
      );
    }
  });
});
