import { contactsEventsV1 } from '@crm/contracts';
import { onEvents, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertContacts } from './overview.projection.ts';

/**
 * `crm.contacts.contact.updated`: records the contact's newer version (its `changes` are not
 * needed). Applied many at once when they arrive together.
 */
export const contactUpdated = onEvents('crm.contacts.contact.updated', contactsEventsV1.ContactUpdated, async (em, events) => {
  const contacts = events.map(({ message, event }) => {
    const contact = message.contact;
    if (!contact) throw new PoisonEventError(`${event.type} without a contact`);
    return { event, contactId: aggregateId(event, contact.id), version: aggregateVersion(event, contact.audit) };
  });
  await upsertContacts(em, contacts);
});
