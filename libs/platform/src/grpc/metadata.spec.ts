import { describe, expect, it } from '@jest/globals';
import { Metadata } from '@grpc/grpc-js';
import { contextFromMetadata, contextToMetadata } from './metadata.ts';

const ORG = '0b4c7a8e-0000-4000-8000-000000000001';

describe('request context in call metadata', () => {
  it('round-trips and drops unknown roles', () => {
    const md = contextToMetadata({ organizationId: ORG, userId: 'u1', roles: ['crm-rep'], requestId: 'r1' });
    md.set('x-roles', 'crm-rep,superuser');
    expect(contextFromMetadata(md)).toEqual({ organizationId: ORG, userId: 'u1', roles: ['crm-rep'], requestId: 'r1' });
  });

  it('refuses calls without a tenant or with a malformed one', () => {
    expect(() => contextFromMetadata(new Metadata())).toThrow(expect.objectContaining({ kind: 'unauthenticated' }));
    const md = new Metadata();
    md.set('x-organization-id', "1' or '1'='1");
    md.set('x-user-id', 'u');
    expect(() => contextFromMetadata(md)).toThrow(expect.objectContaining({ code: 'MISSING_CALL_CONTEXT' }));
  });
});
