import { contactsEventsV1 } from '@crm/contracts';
import { onEvents, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertContacts } from './overview.projection.ts';

/**
 * `crm.contacts.contact.created`: the contact enters the overview (unless a newer event or its
 * delete came first). Applied many at once when they arrive together (upsertContacts).
 */
export const contactCreated = onEvents('crm.contacts.contact.created', contactsEventsV1.ContactCreated, async (em, events) => {
  const contacts = events.map(({ message, event }) => {
    const contact = message.contact;
    if (!contact) throw new PoisonEventError(`${event.type} without a contact`);
    return { event, contactId: aggregateId(event, contact.id), version: aggregateVersion(event, contact.audit) };
  });
  await upsertContacts(em, contacts);
});
