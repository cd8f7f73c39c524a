import { contactsEventsV1 } from '@crm/contracts';
import { onEvent } from '@crm/platform';
import { aggregateId, deleteCompany } from './overview.projection.ts';

/** `crm.contacts.company.deleted`: the company leaves the overview for good (tombstone). */
export const companyDeleted = onEvent('crm.contacts.company.deleted', contactsEventsV1.CompanyDeleted, async (em, message, event) => {
  await deleteCompany(em, event, aggregateId(event, message.companyId));
});
