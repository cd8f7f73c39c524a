import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertCompany } from './overview.projection.ts';

/** `crm.contacts.company.created`: the company enters the overview with its industry (unless a newer event or its delete came first). */
export const companyCreated = onEvent('crm.contacts.company.created', contactsEventsV1.CompanyCreated, async (em, message, event) => {
  const company = message.company;
  if (!company) throw new PoisonEventError(`${event.type} without a company`);
  await upsertCompany(em, event, aggregateId(event, company.id), company.industry, aggregateVersion(event, company.audit));
});
