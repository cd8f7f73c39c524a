import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { upsertContact } from './overview.projection.ts';

/** `crm.contacts.contact.created`: the contact enters the overview. */
export const contactCreated = onEvent('crm.contacts.contact.created', contactsEventsV1.ContactCreated, async (em, message, event) => {
  if (!message.contact?.id) throw new PoisonEventError(`${event.type} without a contact`);
  await upsertContact(em, event, message.contact.id);
});
