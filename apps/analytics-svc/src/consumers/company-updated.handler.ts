import { contactsEventsV1 } from '@crm/contracts';
import { onEvents, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertCompanies } from './overview.projection.ts';

/**
 * `crm.contacts.company.updated`: the company after the change replaces the projected one when its
 * version is newer (its `changes` are not needed). Applied many at once when they arrive together.
 */
export const companyUpdated = onEvents('crm.contacts.company.updated', contactsEventsV1.CompanyUpdated, async (em, events) => {
  const companies = events.map(({ message, event }) => {
    const company = message.company;
    if (!company) throw new PoisonEventError(`${event.type} without a company`);
    return { event, companyId: aggregateId(event, company.id), industry: company.industry, version: aggregateVersion(event, company.audit) };
  });
  await upsertCompanies(em, companies);
});
