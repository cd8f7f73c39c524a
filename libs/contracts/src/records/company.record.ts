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
  events: { created: events.CompanyCreated, updated: events.CompanyUpdated, deleted: events.CompanyDeleted },
  fields: {
    name: { kind: 'text', max: 200, required: true, search: true },
    domain: {
      kind: 'text',
      max: 253,
      format: 'domain',
      unique: 'COMPANY_DOMAIN_TAKEN',
      description: 'internet domain, e.g. acme.com; unique among live companies',
    },
    industry: { kind: 'text', max: 100, filter: true },
    parentCompanyId: { kind: 'ref', to: 'Company', filter: true, description: 'the parent company (hierarchies)' },
    employees: { kind: 'int', min: 0 },
    annualRevenue: { kind: 'money' },
    address: { kind: 'address' },
    ownerId: { kind: 'owner', description: 'Keycloak user id of the owner; default: the caller' },
  },
});
