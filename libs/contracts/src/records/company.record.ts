import * as commonV1 from '../gen/crm/common/v1/common.ts';
import * as contactsV1 from '../gen/crm/contacts/v1/company.ts';
import * as events from '../gen/crm/events/v1/contacts.ts';
import { defineRecord } from './record.ts';

/** Companies (accounts) of contacts-svc: table `contacts.company`, REST `/api/v1/companies`. */
export const companyRecord = defineRecord<contactsV1.Company>()({
  name: 'company',
  plural: 'companies',
  domain: 'contacts',
  softDelete: true,
  service: contactsV1.CompanyServiceService,
  events: {
    created: events.CompanyCreated,
    updated: events.CompanyUpdated,
    deleted: events.CompanyDeleted,
    status_changed: events.CompanyStatusChanged,
    priority_changed: events.CompanyPriorityChanged,
  },
  sorts: { name: ['name'], createdAt: ['createdAt'], updatedAt: ['updatedAt'], lastContactedAt: ['lastContactedAt'] },
  fields: {
    name: { kind: 'text', max: 200, required: true, search: true },
    legalName: { kind: 'text', max: 200, description: 'registered name, when it differs from name' },
    domain: {
      kind: 'text',
      max: 253,
      format: 'domain',
      unique: 'COMPANY_DOMAIN_TAKEN',
      search: true,
      description: 'internet domain, e.g. acme.com; unique among live companies',
    },
    website: { kind: 'text', max: 2048, format: 'url', search: true },
    phone: { kind: 'text', max: 50, format: 'phone', search: true, description: 'international format; stored as E.164' },
    phoneOriginal: { kind: 'text', max: 50, originalOf: 'phone', description: 'the phone number as typed (output only)' },
    email: { kind: 'email', search: true },
    industry: { kind: 'text', max: 100, filter: true },
    accountType: { kind: 'enum', values: contactsV1.AccountType, filter: true },
    status: { kind: 'enum', values: contactsV1.CompanyStatus, filter: true },
    priority: { kind: 'enum', values: commonV1.Priority, filter: true },
    rating: { kind: 'enum', values: contactsV1.Rating, filter: true },
    source: { kind: 'enum', values: commonV1.LeadSource, filter: true, description: 'lead source' },
    parentCompanyId: { kind: 'ref', to: 'Company', filter: true, description: 'the parent company (hierarchies)' },
    registrationNumber: { kind: 'text', max: 100 },
    taxId: { kind: 'text', max: 50, description: 'tax / VAT identification number' },
    businessType: { kind: 'text', max: 100, description: 'legal form or kind of business' },
    foundedYear: { kind: 'int', min: 1000, max: 2200 },
    employees: { kind: 'int', min: 0 },
    annualRevenue: { kind: 'money' },
    creditLimit: { kind: 'money' },
    paymentTermsDays: { kind: 'int', min: 0, max: 3650, description: 'days until an invoice is due' },
    description: { kind: 'text', max: 10_000 },
    address: { kind: 'address', filter: true, description: 'head office; lists filter by its city and country' },
    billingAddress: { kind: 'address' },
    shippingAddress: { kind: 'address' },
    lastContactedAt: { kind: 'timestamp' },
    lastActivityAt: { kind: 'timestamp' },
    tags: { kind: 'tags', description: 'ids of the organization’s tags' },
    customFields: { kind: 'json', description: 'values of the organization’s custom fields for companies, by key (see /api/v1/custom-fields)' },
    ownerId: { kind: 'owner', filter: true, description: 'Keycloak user id of the owner; default: the caller' },
    mergedIntoId: {
      kind: 'text',
      max: 36,
      description:
        'output only (ignored on input): the company this one was merged into; set on merged companies only, which are no longer served (see /api/v1/merges)',
    },
  },
});
