import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantFilter } from '@crm/platform';

/**
 * A company of one organization (table `contacts.company`). Soft-deleted (`deletedAt`) so users
 * can undo; `version` is the optimistic lock, bumped by MikroORM on every flush that changes it.
 * Money is `numeric(19,4)` read back as a decimal string.
 */
export const CompanyEntity = defineEntity({
  name: 'Company',
  tableName: 'company',
  filters: {
    ...tenantFilter,
    live: { name: 'live', cond: { deletedAt: null }, default: true },
  },
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    name: p.text(),
    domain: p.text().nullable(),
    industry: p.text().nullable(),
    parentCompanyId: p.uuid().nullable(),
    employees: p.integer().nullable(),
    annualRevenueAmount: p.decimal('string').precision(19).scale(4).nullable(),
    annualRevenueCurrency: p.string().length(3).nullable(),
    addressStreet: p.text().nullable(),
    addressCity: p.text().nullable(),
    addressRegion: p.text().nullable(),
    addressPostalCode: p.text().nullable(),
    addressCountry: p.text().nullable(),
    ownerId: p.text(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    createdBy: p.text(),
    version: p.integer().version(),
    deletedAt: p.datetime().nullable(),
  },
});

export type Company = InferEntity<typeof CompanyEntity>;
