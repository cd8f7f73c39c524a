import { describe, expect, it } from '@jest/globals';
import { Metadata } from '@grpc/grpc-js';
import { bearerToken, contextFromMetadata, contextToMetadata, MD } from './metadata.ts';

const ORG = '0b4c7a8e-0000-4000-8000-000000000001';
const OTHER_ORG = '0b4c7a8e-0000-4000-8000-000000000002';

describe('request context in call metadata', () => {
  it('carries the internal token as a bearer credential and no identity in plain keys', () => {
    const md = contextToMetadata({ organizationId: ORG, userId: 'u1', roles: ['crm-rep'], requestId: 'r1' }, 'header.payload.signature');
    expect(md.get(MD.authorization)).toEqual(['Bearer header.payload.signature']);
    expect(bearerToken(md)).toBe('header.payload.signature');
    expect(md.get(MD.organizationId)).toEqual([]);
    expect(md.get(MD.userId)).toEqual([]);
    expect(md.get(MD.roles)).toEqual([]);
  });

  it('finds no bearer token when there is none or it is not a bearer credential', () => {
    expect(bearerToken(new Metadata())).toBeUndefined();
    const md = new Metadata();
    md.set(MD.authorization, 'Basic dXNlcjpwYXNz');
    expect(bearerToken(md)).toBeUndefined();
  });

  it('takes identity from the verified token only, whatever plain metadata claims', () => {
    const md = new Metadata();
    md.set(MD.organizationId, OTHER_ORG);
    md.set(MD.userId, 'intruder');
    md.set(MD.roles, 'crm-admin');
    md.set(MD.requestId, 'req-7');
    const identity = { organizationId: ORG, userId: 'u1', roles: ['crm-viewer'] as const };
    expect(contextFromMetadata(md, identity)).toEqual({ ...identity, requestId: 'req-7', idempotencyKey: undefined });
  });

  it('replaces a missing or malformed request id with a fresh UUID', () => {
    const identity = { organizationId: ORG, userId: 'u1', roles: ['crm-viewer'] as const };
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(contextFromMetadata(new Metadata(), identity).requestId).toMatch(uuid);
    for (const bad of ['a b', 'x'.repeat(101), 'semi;colon', '../../etc']) {
      const md = new Metadata();
      md.set(MD.requestId, bad);
      expect(contextFromMetadata(md, identity).requestId).toMatch(uuid);
    }
  });

  it('carries the idempotency key as a plain request attribute beside the identity', () => {
    const ctx = { organizationId: ORG, userId: 'u1', roles: ['crm-rep'] as const, requestId: 'r1', idempotencyKey: 'k-1' };
    const md = contextToMetadata(ctx, 'token');
    expect(contextFromMetadata(md, { organizationId: ORG, userId: 'u1', roles: ['crm-rep'] })).toEqual(ctx);
    expect(contextFromMetadata(contextToMetadata({ ...ctx, idempotencyKey: undefined }, 'token'), ctx).idempotencyKey).toBeUndefined();
  });
});
