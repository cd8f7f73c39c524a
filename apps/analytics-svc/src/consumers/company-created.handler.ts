import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { upsertCompany } from './overview.projection.ts';

/** `crm.contacts.company.created`: the company enters the overview with its industry. */
export const companyCreated = onEvent('crm.contacts.company.created', contactsEventsV1.CompanyCreated, async (em, message, event) => {
  if (!message.company?.id) throw new PoisonEventError(`${event.type} without a company`);
  await upsertCompany(em, event, message.company.id, message.company.industry);
});
