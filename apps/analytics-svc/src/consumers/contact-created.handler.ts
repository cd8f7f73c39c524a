import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertContact } from './overview.projection.ts';

/** `crm.contacts.contact.created`: the contact enters the overview (unless a newer event or its delete came first). */
export const contactCreated = onEvent('crm.contacts.contact.created', contactsEventsV1.ContactCreated, async (em, message, event) => {
  const contact = message.contact;
  if (!contact) throw new PoisonEventError(`${event.type} without a contact`);
  await upsertContact(em, event, aggregateId(event, contact.id), aggregateVersion(event, contact.audit));
});
