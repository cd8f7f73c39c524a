import { contactsEventsV1 } from '@crm/contracts';
import { onEvent } from '@crm/platform';
import { aggregateId, deleteContact } from './overview.projection.ts';

/** `crm.contacts.contact.deleted`: the contact leaves the overview for good (tombstone). */
export const contactDeleted = onEvent('crm.contacts.contact.deleted', contactsEventsV1.ContactDeleted, async (em, message, event) => {
  await deleteContact(em, event, aggregateId(event, message.contactId));
});
