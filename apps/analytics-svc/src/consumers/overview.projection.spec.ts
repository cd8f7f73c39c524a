import { describe, expect, it } from '@jest/globals';
import { PoisonEventError, type ReceivedEvent } from '@crm/platform';
import { aggregateId, aggregateVersion } from './overview.projection.ts';

const event: ReceivedEvent = {
  id: '0190b4a0-0000-7000-8000-000000000001',
  subject: 'crm.contacts.company.updated',
  type: 'crm.contacts.company.updated',
  source: '/crm/contacts-svc',
  organizationId: '0190b4a0-0000-7000-8000-000000000002',
  time: new Date(0),
  data: new Uint8Array(),
  headers: {},
  deliveryCount: 1,
};
const audit = (version: string) => ({ createTime: undefined, updateTime: undefined, createdBy: 'u', version });

describe('aggregateVersion', () => {
  it('reads audit.version (int64 as a decimal string)', () => {
    expect(aggregateVersion(event, audit('1'))).toBe('1');
    expect(aggregateVersion(event, audit('9223372036854775807'))).toBe('9223372036854775807');
  });

  it.each([['0'], [''], ['-1'], ['1.5'], ['01'], ['x'], ['9223372036854775808']])('treats version %j as poison: it cannot be ordered', (version) => {
    expect(() => aggregateVersion(event, audit(version))).toThrow(PoisonEventError);
  });

  it('treats a record without audit as poison', () => {
    expect(() => aggregateVersion(event, undefined)).toThrow(PoisonEventError);
  });
});

describe('aggregateId', () => {
  it('accepts a UUID and refuses anything else as poison (it could never be stored)', () => {
    expect(aggregateId(event, '0190b4a0-0000-7000-8000-000000000003')).toBe('0190b4a0-0000-7000-8000-000000000003');
    expect(() => aggregateId(event, '')).toThrow(PoisonEventError);
    expect(() => aggregateId(event, 'not-a-uuid')).toThrow(PoisonEventError);
    expect(() => aggregateId(event, undefined)).toThrow(PoisonEventError);
  });
});
