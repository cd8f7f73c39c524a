import { describe, expect, it } from '@jest/globals';
import type { Company } from '../gen/crm/contacts/v1/company.ts';
import { defineRecord, enumNames, fromProto, toProto, type FieldTable } from './index.ts';
import { companyRecord } from './company.record.ts';

// Compile-time checks (npm run typecheck): each @ts-expect-error line must be an error.
const base = { name: 'x', plural: 'xs', domain: 'd', softDelete: true, service: companyRecord.service, events: companyRecord.events };
const fields: FieldTable<Company> = companyRecord.fields;
const T = { kind: 'text', max: 10 } as const;
defineRecord<Company>()({
  ...base,
  // @ts-expect-error a proto field (address) is missing from the table
  fields: { name: T, domain: T, industry: T, parentCompanyId: T, employees: { kind: 'int' }, annualRevenue: { kind: 'money' }, ownerId: { kind: 'owner' } },
});
defineRecord<Company>()({
  ...base,
  // @ts-expect-error an extra entry that the proto message does not have
  fields: { ...fields, nickname: T },
});
defineRecord<Company>()({
  ...base,
  // @ts-expect-error a wrong kind: employees is `optional int32`, not text
  fields: { ...fields, employees: T },
});
defineRecord<Company>()({
  ...base,
  // @ts-expect-error a wrong kind: annualRevenue is Money, not an e-mail
  fields: { ...fields, annualRevenue: { kind: 'email' } },
});
const Status = { STATUS_UNSPECIFIED: 0, STATUS_ACTIVE: 1, STATUS_ARCHIVED: 7 } as const;
type WithEnum = { accountType: 0 | 1 | 2 };
defineRecord<WithEnum>()({
  ...base,
  // @ts-expect-error an enum whose values the proto field cannot hold (7)
  fields: { accountType: { kind: 'enum', values: Status } },
});

const AccountType = { ACCOUNT_TYPE_UNSPECIFIED: 0, ACCOUNT_TYPE_CUSTOMER: 1, ACCOUNT_TYPE_PARTNER: 2 } as const;

describe('field codecs', () => {
  it('maps proto enum values to lower-case names without the prefix, 0 = null', () => {
    const spec = { kind: 'enum', values: AccountType } as const;
    expect(enumNames(AccountType)).toEqual(['customer', 'partner']);
    expect(fromProto(spec, 2)).toBe('partner');
    expect(fromProto(spec, 0)).toBeNull();
    expect(toProto(spec, 'customer')).toBe(1);
    expect(toProto(spec, null)).toBe(0);
  });

  it("turns proto3 defaults into null and back, keeping non-null text as ''", () => {
    expect(fromProto(companyRecord.fields.domain, '')).toBeNull();
    expect(toProto(companyRecord.fields.domain, null)).toBe('');
    expect(fromProto({ kind: 'text', max: 5, blank: '' }, '')).toBe('');
    expect(fromProto(companyRecord.fields.employees, undefined)).toBeNull();
    expect(toProto(companyRecord.fields.employees, 0)).toBe(0);
  });

  it('formats money on the way out and drops an all-empty address', () => {
    expect(toProto(companyRecord.fields.annualRevenue, { amount: '1100040000.0000', currency: 'USD' })).toEqual({ amount: '1100040000.00', currency: 'USD' });
    const empty = { street: null, city: null, region: null, postalCode: null, country: null };
    expect(toProto(companyRecord.fields.address, empty)).toBeUndefined();
    expect(fromProto(companyRecord.fields.address, { street: '', city: 'Oslo', region: '', postalCode: '', country: '' })).toEqual({ ...empty, city: 'Oslo' });
  });
});
