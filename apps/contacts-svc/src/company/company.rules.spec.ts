import { describe, expect, it } from '@jest/globals';
import { assertNoHierarchyCycle } from './company.rules.ts';

describe('assertNoHierarchyCycle', () => {
  it('allows a parent outside the company subtree', () => {
    expect(() => assertNoHierarchyCycle('c', ['p', 'gp'])).not.toThrow();
  });
  it('refuses the company itself or one of its descendants as parent', () => {
    expect(() => assertNoHierarchyCycle('c', ['c'])).toThrow(expect.objectContaining({ code: 'COMPANY_HIERARCHY_CYCLE' }));
    expect(() => assertNoHierarchyCycle('c', ['child', 'c'])).toThrow(expect.objectContaining({ kind: 'rule_violation' }));
  });
});
