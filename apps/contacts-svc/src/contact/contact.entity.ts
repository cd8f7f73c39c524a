import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { tenantFilter } from '@crm/platform';

/** A contact (person) of one organization (table `contacts.contact`), soft-deleted, versioned. */
export const ContactEntity = defineEntity({
  name: 'Contact',
  tableName: 'contact',
  filters: {
    ...tenantFilter,
    live: { name: 'live', cond: { deletedAt: null }, default: true },
  },
  properties: {
    id: p.uuid().primary(),
    organizationId: p.uuid(),
    firstName: p.text(),
    lastName: p.text(),
    email: p.text().nullable(),
    phone: p.text().nullable(),
    jobTitle: p.text().nullable(),
    companyId: p.uuid().nullable(),
    ownerId: p.text(),
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
    createdBy: p.text(),
    version: p.integer().version(),
    deletedAt: p.datetime().nullable(),
  },
});

export type Contact = InferEntity<typeof ContactEntity>;
