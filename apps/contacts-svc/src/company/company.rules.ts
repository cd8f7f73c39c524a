import { DomainError, type FieldViolation } from '@crm/platform';
import { normalizeMoney, optionalText, throwIfInvalid, type Money } from '../shared/record.rules.ts';

/** Postal address parts, all optional. */
export interface Address {
  street?: string | undefined;
  city?: string | undefined;
  region?: string | undefined;
  postalCode?: string | undefined;
  country?: string | undefined;
}

/** Company fields a caller may set; `undefined` = not given / cleared. */
export interface CompanyFields {
  name: string;
  domain?: string | undefined;
  industry?: string | undefined;
  parentCompanyId?: string | undefined;
  employees?: number | undefined;
  annualRevenue?: Money | undefined;
  address?: Address | undefined;
  ownerId?: string | undefined;
}

/** Names of updatable company fields (update masks use these, in snake_case on the wire). */
export const COMPANY_FIELDS = ['name', 'domain', 'industry', 'parentCompanyId', 'employees', 'annualRevenue', 'address', 'ownerId'] as const;
export type CompanyField = (typeof COMPANY_FIELDS)[number];

/** Proto field name of each updatable field (events and update masks speak proto names). */
export const COMPANY_FIELD_PROTO_NAMES: Record<CompanyField, string> = {
  name: 'name',
  domain: 'domain',
  industry: 'industry',
  parentCompanyId: 'parent_company_id',
  employees: 'employees',
  annualRevenue: 'annual_revenue',
  address: 'address',
  ownerId: 'owner_id',
};

// RFC 1035 labels, at least one dot, no scheme or path.
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/**
 * Validates and normalises company fields (trimmed text, lower-case domain, money with ISO 4217
 * currency, non-negative employee count). Throws INVALID_ARGUMENT listing every violation.
 */
export function normalizeCompanyFields(input: CompanyFields): CompanyFields {
  const v: FieldViolation[] = [];
  const name = input.name.trim();
  if (!name) v.push({ field: 'name', message: 'is required' });
  if (name.length > 200) v.push({ field: 'name', message: 'must be at most 200 characters' });
  const domain = optionalText(input.domain, 'domain', 253, v)?.toLowerCase();
  if (domain && !DOMAIN.test(domain)) v.push({ field: 'domain', message: 'must be a domain name such as example.com' });
  const employees = input.employees;
  if (employees !== undefined && (!Number.isInteger(employees) || employees < 0)) v.push({ field: 'employees', message: 'must be a non-negative integer' });
  const annualRevenue = input.annualRevenue ? normalizeMoney(input.annualRevenue, 'annualRevenue', v) : undefined;
  const a = input.address;
  const parts: Address | undefined = a
    ? {
        street: optionalText(a.street, 'address.street', 200, v),
        city: optionalText(a.city, 'address.city', 100, v),
        region: optionalText(a.region, 'address.region', 100, v),
        postalCode: optionalText(a.postalCode, 'address.postalCode', 20, v),
        country: optionalText(a.country, 'address.country', 100, v),
      }
    : undefined;
  const address = parts && Object.values(parts).some((x) => x !== undefined) ? parts : undefined;
  const industry = optionalText(input.industry, 'industry', 100, v);
  throwIfInvalid(v, 'company');
  return {
    name,
    domain,
    industry,
    parentCompanyId: input.parentCompanyId || undefined,
    employees,
    annualRevenue,
    address,
    ownerId: input.ownerId || undefined,
  };
}

/**
 * Company hierarchy rule: a company cannot be its own ancestor. `ancestorsOfParent` lists the
 * proposed parent and its ancestors (nearest first). Throws COMPANY_HIERARCHY_CYCLE (422).
 */
export function assertNoHierarchyCycle(companyId: string, ancestorsOfParent: readonly string[]): void {
  if (ancestorsOfParent.includes(companyId)) {
    throw new DomainError('rule_violation', 'COMPANY_HIERARCHY_CYCLE', 'a company cannot be its own parent or ancestor', [
      { field: 'parentCompanyId', message: 'would make the company its own ancestor' },
    ]);
  }
}
