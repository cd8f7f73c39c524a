import { beforeAll } from '@jest/globals';
import { contactsEventsV1, customFieldsEventsV1, segmentsEventsV1, tagsEventsV1 } from '@crm/contracts';
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
    patch: { jobTitle: 'CTO', department: 'Engineering' },
    events: 'crm.contacts.contact',
    updated: contactsEventsV1.ContactUpdated,
    record: 'contact',
  });
  describeRecordConformance(suite, {
    path: '/api/v1/tags',
    create: () => ({ name: unique('Tag'), color: '#1e90ff', description: 'Key accounts' }),
    patch: { description: 'Strategic accounts', color: '#ff8800', active: false },
    events: 'crm.contacts.tag',
    updated: tagsEventsV1.TagUpdated,
    record: 'tag',
  });
  // a rule needs a live tag of the organization: one, made before the rules' tests run
  let ruleTagId = '';
  beforeAll(async () => {
    const res = await suite().api('/api/v1/tags', { method: 'POST', json: { name: unique('Rule target') } });
    ruleTagId = ((await res.json()) as { id: string }).id;
  });
  describeRecordConformance(suite, {
    path: '/api/v1/tag-rules',
    create: () => ({ object: 'company', field: 'account_type', value: unique('customer'), tagId: ruleTagId }),
    patch: { value: 'partner', active: false },
    events: 'crm.contacts.tag_rule',
    updated: tagsEventsV1.TagRuleUpdated,
    record: 'tagRule',
  });
  describeRecordConformance(suite, {
    path: '/api/v1/custom-fields',
    // no arrays in the create body: `echoes` compares with isDeepStrictEqual, and arrays parsed by
    // fetch come from another realm than the test's (options are covered by custom-fields.int.spec.ts)
    create: () => ({ object: 'company', key: unique('tier').replaceAll('-', '_'), label: 'Tier', type: 'text' }),
    patch: { label: 'Customer tier', required: true },
    events: 'crm.contacts.custom_field',
    updated: customFieldsEventsV1.CustomFieldUpdated,
    record: 'customField',
  });
  describeRecordConformance(suite, {
    path: '/api/v1/segments',
    // a static segment: criteria (arrays inside) are covered by segments.int.spec.ts, see the note above
    create: () => ({ name: unique('Segment'), object: 'company', kind: 'static', description: 'Key accounts' }),
    patch: { name: 'Renamed segment', description: 'Strategic accounts' },
    events: 'crm.contacts.segment',
    updated: segmentsEventsV1.SegmentUpdated,
    record: 'segment',
  });
}
