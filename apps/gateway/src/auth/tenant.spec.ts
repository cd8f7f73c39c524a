import { describe, expect, it } from '@jest/globals';
import { organizationsOf, resolveOrganization } from './tenant.ts';

const ACME = '0b4c7a8e-0000-4000-8000-000000000001';
const GLOBEX = '0b4c7a8e-0000-4000-8000-000000000002';
const claims = (organization: Record<string, { id?: string }>) => ({ sub: 'u', iss: 'i', organization });

describe('resolveOrganization', () => {
  it('uses the only organization of the token', () => {
    expect(resolveOrganization(claims({ acme: { id: ACME } }), undefined)).toEqual({ id: ACME });
  });
  it('requires X-Organization-Id for members of several organizations', () => {
    const out = resolveOrganization(claims({ acme: { id: ACME }, globex: { id: GLOBEX } }), undefined);
    expect(out).toMatchObject({ problem: { status: 400 } });
    expect(resolveOrganization(claims({ acme: { id: ACME }, globex: { id: GLOBEX } }), GLOBEX)).toEqual({ id: GLOBEX });
  });
  it('refuses an organization the token lacks, and a token without one', () => {
    expect(resolveOrganization(claims({ acme: { id: ACME } }), GLOBEX)).toMatchObject({ problem: { status: 403 } });
    expect(resolveOrganization(claims({}), undefined)).toMatchObject({ problem: { status: 403 } });
  });
  it('skips memberships without an id', () => {
    expect([...organizationsOf(claims({ acme: {}, globex: { id: GLOBEX } })).keys()]).toEqual([GLOBEX]);
  });
});
