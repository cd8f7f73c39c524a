import { contactsEventsV1 } from '@crm/contracts';
import { onEvents, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertCompanies } from './overview.projection.ts';

/**
 * `crm.contacts.company.created`: the company enters the overview with its industry (unless a newer
 * event or its delete came first). Applied many at once when they arrive together (upsertCompanies).
 */
export const companyCreated = onEvents('crm.contacts.company.created', contactsEventsV1.CompanyCreated, async (em, events) => {
  const companies = events.map(({ message, event }) => {
    const company = message.company;
    if (!company) throw new PoisonEventError(`${event.type} without a company`);
    return { event, companyId: aggregateId(event, company.id), industry: company.industry, version: aggregateVersion(event, company.audit) };
  });
  await upsertCompanies(em, companies);
});
