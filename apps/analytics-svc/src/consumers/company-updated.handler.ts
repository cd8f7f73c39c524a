import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { upsertCompany } from './overview.projection.ts';

/** `crm.contacts.company.updated`: the company after the change replaces the projected one (its `changes` are not needed). */
export const companyUpdated = onEvent('crm.contacts.company.updated', contactsEventsV1.CompanyUpdated, async (em, message, event) => {
  if (!message.company?.id) throw new PoisonEventError(`${event.type} without a company`);
  await upsertCompany(em, event, message.company.id, message.company.industry);
});
