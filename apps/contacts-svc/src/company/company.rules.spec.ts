import { describe, expect, it } from '@jest/globals';
import { DomainError } from '@crm/platform';
import { assertNoHierarchyCycle, normalizeCompanyFields } from './company.rules.ts';

function violationsOf(fn: () => unknown): { field: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof DomainError) return [...e.violations];
  }
  throw new Error('expected a DomainError');
}

describe('normalizeCompanyFields', () => {
  it('trims text, lower-cases the domain and formats money', () => {
    const out = normalizeCompanyFields({ name: '  Acme  ', domain: 'ACME.com', annualRevenue: { amount: '1100040000', currency: 'USD' } });
    expect(out).toMatchObject({ name: 'Acme', domain: 'acme.com', annualRevenue: { amount: '1100040000.00', currency: 'USD' } });
  });

  it('lists every invalid field at once', () => {
    const fields = violationsOf(() =>
      normalizeCompanyFields({ name: ' ', domain: 'not a domain', employees: -1, annualRevenue: { amount: '1e5', currency: 'usd' } }),
    ).map((v) => v.field);
    expect(fields).toEqual(['name', 'domain', 'employees', 'annualRevenue.amount']);
  });

  it('rejects a lower-case currency code', () => {
    expect(violationsOf(() => normalizeCompanyFields({ name: 'x', annualRevenue: { amount: '1.5', currency: 'eur' } }))).toEqual([
      { field: 'annualRevenue.currency', message: expect.any(String) },
    ]);
  });
});

describe('assertNoHierarchyCycle', () => {
  it('allows a parent outside the company subtree', () => {
    expect(() => assertNoHierarchyCycle('c', ['p', 'gp'])).not.toThrow();
  });
  it('refuses the company itself or one of its descendants as parent', () => {
    expect(() => assertNoHierarchyCycle('c', ['c'])).toThrow(expect.objectContaining({ code: 'COMPANY_HIERARCHY_CYCLE' }));
    expect(() => assertNoHierarchyCycle('c', ['child', 'c'])).toThrow(expect.objectContaining({ kind: 'rule_violation' }));
  });
});
