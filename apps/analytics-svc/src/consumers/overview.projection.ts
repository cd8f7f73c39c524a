import type { EntityManager, ReceivedEvent } from '@crm/platform';

/*
 * Writes of the overview projection, shared by the created and updated handlers (both carry the
 * whole record). Upserts and deletes keyed by (organization, id) make every event idempotent on
 * its own; the inbox makes redelivery a no-op besides.
 */

/** Inserts or replaces company `companyId` of the event's organization with `industry`. */
export async function upsertCompany(em: EntityManager, event: ReceivedEvent, companyId: string, industry: string): Promise<void> {
  await em.execute(
    `insert into analytics.company_projection (organization_id, company_id, industry, updated_at) values (?, ?, ?, ?)
     on conflict (organization_id, company_id) do update set industry = excluded.industry, updated_at = excluded.updated_at`,
    [event.organizationId, companyId, industry, event.time],
  );
}

/** Removes company `companyId` of the event's organization (absent is fine). */
export async function deleteCompany(em: EntityManager, event: ReceivedEvent, companyId: string): Promise<void> {
  await em.execute('delete from analytics.company_projection where organization_id = ? and company_id = ?', [event.organizationId, companyId]);
}

/** Inserts or touches contact `contactId` of the event's organization. */
export async function upsertContact(em: EntityManager, event: ReceivedEvent, contactId: string): Promise<void> {
  await em.execute(
    `insert into analytics.contact_projection (organization_id, contact_id, updated_at) values (?, ?, ?)
     on conflict (organization_id, contact_id) do update set updated_at = excluded.updated_at`,
    [event.organizationId, contactId, event.time],
  );
}

/** Removes contact `contactId` of the event's organization (absent is fine). */
export async function deleteContact(em: EntityManager, event: ReceivedEvent, contactId: string): Promise<void> {
  await em.execute('delete from analytics.contact_projection where organization_id = ? and contact_id = ?', [event.organizationId, contactId]);
}
