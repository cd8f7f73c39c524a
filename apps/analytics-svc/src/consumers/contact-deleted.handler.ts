import { contactsEventsV1 } from '@crm/contracts';
import { onEvent } from '@crm/platform';
import { deleteContact } from './overview.projection.ts';

/** `crm.contacts.contact.deleted`: the contact leaves the overview. */
export const contactDeleted = onEvent('crm.contacts.contact.deleted', contactsEventsV1.ContactDeleted, async (em, message, event) => {
  await deleteContact(em, event, message.contactId);
});
