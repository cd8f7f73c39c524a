import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { upsertContact } from './overview.projection.ts';

/** `crm.contacts.contact.updated`: touches the projected contact (its `changes` are not needed). */
export const contactUpdated = onEvent('crm.contacts.contact.updated', contactsEventsV1.ContactUpdated, async (em, message, event) => {
  if (!message.contact?.id) throw new PoisonEventError(`${event.type} without a contact`);
  await upsertContact(em, event, message.contact.id);
});
