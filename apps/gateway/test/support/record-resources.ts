import { contactsEventsV1 } from '@crm/contracts';
import { describeRecordConformance, unique } from './conformance.ts';
import type { TestSuite } from './suite.ts';

/**
 * Every record resource keeps the same REST, tenancy and event conventions; a new aggregate joins
 * with one entry here: path, a unique valid create body, a valid patch, its event subject prefix,
 * and its `…Updated` codec with the record field inside it. Run by conformance.int.spec.ts (one
 * contacts-svc) and conformance-replicas.int.spec.ts (two).
 */
export function describeEveryRecordResource(suite: () => TestSuite): void {
  describeRecordConformance(suite, {
    path: '/api/v1/companies',
    create: () => ({ name: unique('Company'), industry: 'software' }),
    patch: { industry: 'retail', employees: 120, annualRevenue: { amount: '1250.00', currency: 'EUR' } },
    events: 'crm.contacts.company',
    updated: contactsEventsV1.CompanyUpdated,
    record: 'company',
  });
  describeRecordConformance(suite, {
    path: '/api/v1/contacts',
    create: () => ({ firstName: 'Ada', lastName: unique('Lovelace'), email: `${unique('ada')}@example.com`, jobTitle: 'Engineer' }),
    patch: { jobTitle: 'CTO', phone: '+1 555 0100' },
    events: 'crm.contacts.contact',
    updated: contactsEventsV1.ContactUpdated,
    record: 'contact',
  });
}
