import { isUuid, PoisonEventError, type EntityManager, type ReceivedEvent } from '@crm/platform';

/*
 * Writes of the overview projection, shared by the handlers. Events may arrive out of order (a
 * nak'ed event is overtaken by later ones; a redelivery comes after newer events), so each write
 * applies only what is newer than what the row reflects:
 *
 * - created/updated carry the whole record with its aggregate version (`audit.version`): applied
 *   when the row is absent, or live with a lower version; otherwise a no-op;
 * - deleted carries only the id: the row becomes (or is created as) a tombstone, which no
 *   created/updated event changes afterwards — deletes are final (records are never undeleted).
 *
 * Each row is locked (or created) first, so replicas applying events of one aggregate at once
 * serialize on it. The overview counters change in the same transaction, only when a row turns
 * live, changes industry or dies, so they always equal the live rows. Counter rows are updated in
 * a fixed order (by industry) so two transactions never wait on each other in a cycle.
 */

const MAX_INT64 = 2n ** 63n - 1n;

/**
 * The aggregate version an event's record carries (`audit.version`, int64 as a decimal string);
 * throws {@link PoisonEventError} when it is absent or not a positive integer: such an event cannot
 * be ordered against the others, so it can never apply correctly.
 */
export function aggregateVersion(event: ReceivedEvent, audit: { version: string } | undefined): string {
  const version = audit?.version ?? '';
  if (!/^[1-9][0-9]{0,18}$/.test(version) || BigInt(version) > MAX_INT64)
    throw new PoisonEventError(`${event.type} ${event.id} carries no valid audit.version (got "${version}")`);
  return version;
}

/** The aggregate id an event names; throws {@link PoisonEventError} unless it is a UUID (it could never be stored). */
export function aggregateId(event: ReceivedEvent, id: string | undefined): string {
  if (!id || !isUuid(id)) throw new PoisonEventError(`${event.type} ${event.id} names no valid aggregate id (got "${id ?? ''}")`);
  return id;
}

interface CompanyRow {
  industry: string;
  version: string;
  deleted: boolean;
}

/** Company `companyId` of the event's organization is now `industry` at aggregate `version` (applied only if newer). */
export async function upsertCompany(em: EntityManager, event: ReceivedEvent, companyId: string, industry: string, version: string): Promise<void> {
  const org = event.organizationId;
  const inserted = await em.execute<{ company_id: string }[]>(
    `insert into analytics.company_projection (organization_id, company_id, industry, version, deleted, updated_at) values (?, ?, ?, ?, false, ?)
     on conflict (organization_id, company_id) do nothing returning company_id`,
    [org, companyId, industry, version, event.time],
  );
  if (inserted.length === 1) return countIndustries(em, org, { [industry]: 1 });
  const row = await lockCompany(em, org, companyId);
  if (row.deleted || BigInt(row.version) >= BigInt(version)) return;
  await em.execute('update analytics.company_projection set industry = ?, version = ?, updated_at = ? where organization_id = ? and company_id = ?', [
    industry,
    version,
    event.time,
    org,
    companyId,
  ]);
  if (row.industry !== industry) await countIndustries(em, org, { [row.industry]: -1, [industry]: 1 });
}

/** Company `companyId` of the event's organization was deleted: tombstoned, whatever arrives later. */
export async function deleteCompany(em: EntityManager, event: ReceivedEvent, companyId: string): Promise<void> {
  const org = event.organizationId;
  const inserted = await em.execute<{ company_id: string }[]>(
    `insert into analytics.company_projection (organization_id, company_id, industry, version, deleted, updated_at) values (?, ?, '', 0, true, ?)
     on conflict (organization_id, company_id) do nothing returning company_id`,
    [org, companyId, event.time],
  );
  if (inserted.length === 1) return;
  const row = await lockCompany(em, org, companyId);
  if (row.deleted) return;
  await em.execute('update analytics.company_projection set deleted = true, updated_at = ? where organization_id = ? and company_id = ?', [
    event.time,
    org,
    companyId,
  ]);
  await countIndustries(em, org, { [row.industry]: -1 });
}

interface ContactRow {
  version: string;
  deleted: boolean;
}

/** Contact `contactId` of the event's organization exists at aggregate `version` (applied only if newer). */
export async function upsertContact(em: EntityManager, event: ReceivedEvent, contactId: string, version: string): Promise<void> {
  const org = event.organizationId;
  const inserted = await em.execute<{ contact_id: string }[]>(
    `insert into analytics.contact_projection (organization_id, contact_id, version, deleted, updated_at) values (?, ?, ?, false, ?)
     on conflict (organization_id, contact_id) do nothing returning contact_id`,
    [org, contactId, version, event.time],
  );
  if (inserted.length === 1) return countContacts(em, org, 1);
  const row = await lockContact(em, org, contactId);
  if (row.deleted || BigInt(row.version) >= BigInt(version)) return;
  await em.execute('update analytics.contact_projection set version = ?, updated_at = ? where organization_id = ? and contact_id = ?', [
    version,
    event.time,
    org,
    contactId,
  ]);
}

/** Contact `contactId` of the event's organization was deleted: tombstoned, whatever arrives later. */
export async function deleteContact(em: EntityManager, event: ReceivedEvent, contactId: string): Promise<void> {
  const org = event.organizationId;
  const inserted = await em.execute<{ contact_id: string }[]>(
    `insert into analytics.contact_projection (organization_id, contact_id, version, deleted, updated_at) values (?, ?, 0, true, ?)
     on conflict (organization_id, contact_id) do nothing returning contact_id`,
    [org, contactId, event.time],
  );
  if (inserted.length === 1) return;
  const row = await lockContact(em, org, contactId);
  if (row.deleted) return;
  await em.execute('update analytics.contact_projection set deleted = true, updated_at = ? where organization_id = ? and contact_id = ?', [
    event.time,
    org,
    contactId,
  ]);
  await countContacts(em, org, -1);
}

async function lockCompany(em: EntityManager, org: string, companyId: string): Promise<CompanyRow> {
  const [row] = await em.execute<CompanyRow[]>(
    'select industry, version::text as version, deleted from analytics.company_projection where organization_id = ? and company_id = ? for update',
    [org, companyId],
  );
  // the insert above found it, and rows are never removed: absent means the schema is broken
  if (!row) throw new Error(`company_projection row ${org}/${companyId} vanished`);
  return row;
}

async function lockContact(em: EntityManager, org: string, contactId: string): Promise<ContactRow> {
  const [row] = await em.execute<ContactRow[]>(
    'select version::text as version, deleted from analytics.contact_projection where organization_id = ? and contact_id = ? for update',
    [org, contactId],
  );
  if (!row) throw new Error(`contact_projection row ${org}/${contactId} vanished`);
  return row;
}

/** Adds `deltas` (industry → change) to the organization's company counters, in industry order. */
async function countIndustries(em: EntityManager, org: string, deltas: Record<string, number>): Promise<void> {
  for (const industry of Object.keys(deltas).sort()) {
    const delta = deltas[industry] ?? 0;
    if (delta === 0) continue;
    await em.execute(
      `insert into analytics.overview_industry_count as c (organization_id, industry, company_count) values (?, ?, ?)
       on conflict (organization_id, industry) do update set company_count = c.company_count + excluded.company_count`,
      [org, industry, delta],
    );
  }
}

async function countContacts(em: EntityManager, org: string, delta: number): Promise<void> {
  await em.execute(
    `insert into analytics.overview_contact_count as c (organization_id, contact_count) values (?, ?)
     on conflict (organization_id) do update set contact_count = c.contact_count + excluded.contact_count`,
    [org, delta],
  );
}
