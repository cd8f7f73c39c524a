import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertCompany } from './overview.projection.ts';

/**
 * `crm.contacts.company.updated`: the company after the change replaces the projected one when its
 * version is newer (its `changes` are not needed).
 */
export const companyUpdated = onEvent('crm.contacts.company.updated', contactsEventsV1.CompanyUpdated, async (em, message, event) => {
  const company = message.company;
  if (!company) throw new PoisonEventError(`${event.type} without a company`);
  await upsertCompany(em, event, aggregateId(event, company.id), company.industry, aggregateVersion(event, company.audit));
});
