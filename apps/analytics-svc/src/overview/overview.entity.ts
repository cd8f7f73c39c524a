import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantFilter } from '@crm/platform';

/**
 * One live company as the event stream describes it (table `analytics.company_projection`):
 * enough to count companies per organization and industry. Rebuilt from events alone.
 */
export const CompanyProjection = defineEntity({
  name: 'CompanyProjection',
  tableName: 'company_projection',
  filters: tenantFilter,
  indexes: [{ name: 'company_projection_industry_idx', properties: ['organizationId', 'industry'] }],
  properties: {
    organizationId: p.uuid().primary(),
    companyId: p.uuid().primary(),
    industry: p.text().default(''),
    updatedAt: p.datetime(),
  },
});

/** One live contact (table `analytics.contact_projection`). */
export const ContactProjection = defineEntity({
  name: 'ContactProjection',
  tableName: 'contact_projection',
  filters: tenantFilter,
  properties: {
    organizationId: p.uuid().primary(),
    contactId: p.uuid().primary(),
    updatedAt: p.datetime(),
  },
});

export type CompanyProjectionRow = InferEntity<typeof CompanyProjection>;
