import { contactsEventsV1 } from '@crm/contracts';
import { onEvent, PoisonEventError } from '@crm/platform';
import { aggregateId, aggregateVersion, upsertContact } from './overview.projection.ts';

/** `crm.contacts.contact.updated`: records the contact's newer version (its `changes` are not needed). */
export const contactUpdated = onEvent('crm.contacts.contact.updated', contactsEventsV1.ContactUpdated, async (em, message, event) => {
  const contact = message.contact;
  if (!contact) throw new PoisonEventError(`${event.type} without a contact`);
  await upsertContact(em, event, aggregateId(event, contact.id), aggregateVersion(event, contact.audit));
});
