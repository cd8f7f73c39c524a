import { contactsEventsV1 } from '@crm/contracts';
import { domainEvent, type PendingEvent } from '@crm/platform';
import type { Company } from './company.entity.ts';
import { toCompanyMessage } from './company.mapper.ts';
import { COMPANY_FIELD_PROTO_NAMES, type CompanyField } from './company.rules.ts';

const { CompanyCreated, CompanyUpdated, CompanyDeleted } = contactsEventsV1;

/** `crm.contacts.company.created` with the company as stored. */
export function companyCreated(company: Company): PendingEvent {
  return domainEvent('crm.contacts.company.created', 'crm.events.v1.CompanyCreated', CompanyCreated, company.id, { company: toCompanyMessage(company) });
}

/** `crm.contacts.company.updated` with the company after the change and the changed fields. */
export function companyUpdated(company: Company, changed: readonly CompanyField[]): PendingEvent {
  return domainEvent('crm.contacts.company.updated', 'crm.events.v1.CompanyUpdated', CompanyUpdated, company.id, {
    company: toCompanyMessage(company),
    changedFields: changed.map((f) => COMPANY_FIELD_PROTO_NAMES[f]),
    changes: [],
  });
}

/** `crm.contacts.company.deleted`. */
export function companyDeleted(companyId: string): PendingEvent {
  return domainEvent('crm.contacts.company.deleted', 'crm.events.v1.CompanyDeleted', CompanyDeleted, companyId, { companyId });
}
