import { contactsEventsV1 } from '@crm/contracts';
import { PoisonEventError, type EntityManager, type EventHandler, type ReceivedEvent } from '@crm/platform';

const { CompanyCreated, CompanyUpdated, CompanyDeleted, ContactCreated, ContactUpdated, ContactDeleted } = contactsEventsV1;

/**
 * Applies `crm.contacts.*` events to the overview projection. Upserts and deletes keyed by
 * (organization, id) make every event idempotent on its own, and the inbox makes redelivery a
 * no-op besides; other subjects are accepted and ignored (analytics consumes all of `crm.>`).
 */
export const applyContactsEvent: EventHandler = async (em, event) => {
  switch (event.subject) {
    case 'crm.contacts.company.created':
    case 'crm.contacts.company.updated': {
      const codec = event.subject.endsWith('created') ? CompanyCreated : CompanyUpdated;
      const company = decode(event, codec).company;
      if (!company?.id) throw new PoisonEventError(`${event.subject} without a company`);
      await upsertCompany(em, event, company.id, company.industry);
      return;
    }
    case 'crm.contacts.company.deleted':
      await em.execute('delete from analytics.company_projection where organization_id = ? and company_id = ?', [
        event.organizationId,
        decode(event, CompanyDeleted).companyId,
      ]);
      return;
    case 'crm.contacts.contact.created':
    case 'crm.contacts.contact.updated': {
      const codec = event.subject.endsWith('created') ? ContactCreated : ContactUpdated;
      const contact = decode(event, codec).contact;
      if (!contact?.id) throw new PoisonEventError(`${event.subject} without a contact`);
      await em.execute(
        `insert into analytics.contact_projection (organization_id, contact_id, updated_at) values (?, ?, ?)
         on conflict (organization_id, contact_id) do update set updated_at = excluded.updated_at`,
        [event.organizationId, contact.id, event.time],
      );
      return;
    }
    case 'crm.contacts.contact.deleted':
      await em.execute('delete from analytics.contact_projection where organization_id = ? and contact_id = ?', [
        event.organizationId,
        decode(event, ContactDeleted).contactId,
      ]);
      return;
    default:
      return;
  }
};

async function upsertCompany(em: EntityManager, event: ReceivedEvent, companyId: string, industry: string): Promise<void> {
  await em.execute(
    `insert into analytics.company_projection (organization_id, company_id, industry, updated_at) values (?, ?, ?, ?)
     on conflict (organization_id, company_id) do update set industry = excluded.industry, updated_at = excluded.updated_at`,
    [event.organizationId, companyId, industry, event.time],
  );
}

function decode<T>(event: ReceivedEvent, codec: { decode(b: Uint8Array): T }): T {
  try {
    return codec.decode(event.data);
  } catch (err) {
    throw new PoisonEventError(`undecodable ${event.subject}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
