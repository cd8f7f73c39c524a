import type { contactsV1 } from '@crm/contracts';
import { formatAmount } from '../shared/record.rules.ts';
import type { Company } from './company.entity.ts';
import { DomainError } from '@crm/platform';
import { COMPANY_FIELD_PROTO_NAMES, COMPANY_FIELDS, type CompanyField, type CompanyFields } from './company.rules.ts';

/** Entity → proto message (empty strings for absent text, per proto3). */
export function toCompanyMessage(c: Company): contactsV1.Company {
  return {
    id: c.id,
    name: c.name,
    domain: c.domain ?? '',
    industry: c.industry ?? '',
    parentCompanyId: c.parentCompanyId ?? '',
    employees: c.employees ?? undefined,
    annualRevenue:
      c.annualRevenueAmount && c.annualRevenueCurrency ? { amount: formatAmount(c.annualRevenueAmount), currency: c.annualRevenueCurrency } : undefined,
    address:
      c.addressStreet || c.addressCity || c.addressRegion || c.addressPostalCode || c.addressCountry
        ? {
            street: c.addressStreet ?? '',
            city: c.addressCity ?? '',
            region: c.addressRegion ?? '',
            postalCode: c.addressPostalCode ?? '',
            country: c.addressCountry ?? '',
          }
        : undefined,
    ownerId: c.ownerId,
    audit: { createTime: c.createdAt, updateTime: c.updatedAt, createdBy: c.createdBy, version: String(c.version) },
  };
}

/** Proto message → domain fields (empty string = absent). */
export function fromCompanyMessage(m: contactsV1.Company | undefined): CompanyFields {
  if (!m) throw new DomainError('invalid_argument', 'VALIDATION_FAILED', 'company is required', [{ field: 'company', message: 'is required' }]);
  return {
    name: m.name,
    domain: m.domain || undefined,
    industry: m.industry || undefined,
    parentCompanyId: m.parentCompanyId || undefined,
    employees: m.employees,
    annualRevenue: m.annualRevenue ? { amount: m.annualRevenue.amount, currency: m.annualRevenue.currency } : undefined,
    address: m.address
      ? {
          street: m.address.street || undefined,
          city: m.address.city || undefined,
          region: m.address.region || undefined,
          postalCode: m.address.postalCode || undefined,
          country: m.address.country || undefined,
        }
      : undefined,
    ownerId: m.ownerId || undefined,
  };
}

const PROTO_TO_FIELD = new Map<string, CompanyField>(COMPANY_FIELDS.map((f) => [COMPANY_FIELD_PROTO_NAMES[f], f]));

/** Update-mask paths (proto names) → fields; an unknown path is INVALID_ARGUMENT. */
export function companyMask(paths: readonly string[] | undefined): CompanyField[] {
  const out: CompanyField[] = [];
  for (const path of paths ?? []) {
    const field = PROTO_TO_FIELD.get(path);
    if (!field) throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', `cannot update ${path}`, [{ field: path, message: 'not an updatable field' }]);
    out.push(field);
  }
  if (out.length === 0)
    throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', 'update mask is empty', [{ field: 'updateMask', message: 'name at least one field' }]);
  return out;
}
