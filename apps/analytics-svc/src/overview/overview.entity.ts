import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantFilter } from '@crm/platform';

/**
 * One company as the event stream describes it (table `analytics.company_projection`): its
 * industry at aggregate version `version`, or a tombstone (`deleted`) once it was deleted, so a
 * late older event cannot bring it back. Rebuilt from events alone.
 */
export const CompanyProjection = defineEntity({
  name: 'CompanyProjection',
  tableName: 'company_projection',
  filters: tenantFilter,
  properties: {
    organizationId: p.uuid().primary(),
    companyId: p.uuid().primary(),
    industry: p.text().default(''),
    /** Aggregate version (`audit.version`) of the event projected last; 0 before versions were kept. */
    version: p.bigint('string').defaultRaw('0'),
    /** Tombstone: the company was deleted; counted nowhere and never resurrected. */
    deleted: p.boolean().default(false),
    updatedAt: p.datetime(),
  },
});

/** One contact (table `analytics.contact_projection`), versioned like {@link CompanyProjection}. */
export const ContactProjection = defineEntity({
  name: 'ContactProjection',
  tableName: 'contact_projection',
  filters: tenantFilter,
  properties: {
    organizationId: p.uuid().primary(),
    contactId: p.uuid().primary(),
    version: p.bigint('string').defaultRaw('0'),
    deleted: p.boolean().default(false),
    updatedAt: p.datetime(),
  },
});

/**
 * Live companies per organization and industry (table `analytics.overview_industry_count`),
 * changed in the transaction that changes {@link CompanyProjection}; the overview reads it instead
 * of counting rows. An industry whose count fell to 0 keeps its row and is not shown.
 */
export const OverviewIndustryCount = defineEntity({
  name: 'OverviewIndustryCount',
  tableName: 'overview_industry_count',
  filters: tenantFilter,
  properties: {
    organizationId: p.uuid().primary(),
    industry: p.text().primary(),
    companyCount: p.bigint('string').defaultRaw('0'),
  },
});

/** Live contacts per organization (table `analytics.overview_contact_count`), kept like {@link OverviewIndustryCount}. */
export const OverviewContactCount = defineEntity({
  name: 'OverviewContactCount',
  tableName: 'overview_contact_count',
  filters: tenantFilter,
  properties: {
    organizationId: p.uuid().primary(),
    contactCount: p.bigint('string').defaultRaw('0'),
  },
});

export type CompanyProjectionRow = InferEntity<typeof CompanyProjection>;
