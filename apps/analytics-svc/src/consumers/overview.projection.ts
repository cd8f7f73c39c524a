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

/** One company of {@link upsertCompanies}: what {@link upsertCompany} takes. */
export interface CompanyVersion {
  event: ReceivedEvent;
  companyId: string;
  industry: string;
  version: string;
}

/**
 * {@link upsertCompany} for many companies at once (created and updated events arriving together),
 * with the outcome of applying them one by one in any order, in at most four statements:
 * 1. the companies the projection has not seen are inserted, with their counters;
 * 2. the rows of all others (already projected, or named again here) are locked, in key order;
 * 3. each live one whose newest version here is newer is updated to that version;
 * 4. the counters move by what changed industry.
 * Counters and rows are written in key order (organization, then industry or id), so concurrent
 * replicas never wait on each other in a cycle.
 */
export async function upsertCompanies(em: EntityManager, companies: readonly CompanyVersion[]): Promise<void> {
  const first = companies[0];
  if (companies.length === 1 && first) return upsertCompany(em, first.event, first.companyId, first.industry, first.version);
  const key = (org: string, id: string) => `${org}/${id}`.toLowerCase();
  const [firstSeen, rest] = splitFirstSeen(companies, (c) => key(c.event.organizationId, c.companyId));
  const inserted = await em.execute<{ organization_id: string; company_id: string }[]>(
    `with input as (
       select * from json_to_recordset(?::json) as i(organization_id uuid, company_id uuid, industry text, version bigint, updated_at timestamptz)
     ), ins as (
       insert into analytics.company_projection (organization_id, company_id, industry, version, deleted, updated_at)
       select organization_id, company_id, industry, version, false, updated_at from input order by organization_id, company_id
       on conflict (organization_id, company_id) do nothing
       returning organization_id, company_id, industry
     ), counted as (
       insert into analytics.overview_industry_count as c (organization_id, industry, company_count)
       select organization_id, industry, count(*) from ins group by organization_id, industry order by organization_id, industry
       on conflict (organization_id, industry) do update set company_count = c.company_count + excluded.company_count
     )
     select organization_id, company_id from ins`,
    [JSON.stringify(firstSeen.map((c) => ({ ...companyRow(c), industry: c.industry, version: c.version })))],
  );
  const done = new Set(inserted.map((r) => key(r.organization_id, r.company_id)));
  const newest = newestByKey([...firstSeen.filter((c) => !done.has(key(c.event.organizationId, c.companyId))), ...rest], (c) =>
    key(c.event.organizationId, c.companyId),
  );
  if (newest.size === 0) return;
  const stored = await em.execute<{ organization_id: string; company_id: string; industry: string; version: string; deleted: boolean }[]>(
    `select p.organization_id, p.company_id, p.industry, p.version::text as version, p.deleted
     from analytics.company_projection p join json_to_recordset(?::json) as k(organization_id uuid, company_id uuid) using (organization_id, company_id)
     order by p.organization_id, p.company_id for update of p`,
    [JSON.stringify([...newest.values()].map(companyRow))],
  );
  if (stored.length !== newest.size) throw new Error(`company_projection rows vanished (${newest.size} expected, ${stored.length} found)`);
  const updates: CompanyVersion[] = [];
  const deltas = new Map<string, { organization_id: string; industry: string; delta: number }>();
  const count = (org: string, industry: string, delta: number) => {
    const d = deltas.get(`${org}\u0000${industry}`) ?? { organization_id: org, industry, delta: 0 };
    d.delta += delta;
    deltas.set(`${org}\u0000${industry}`, d);
  };
  for (const row of stored) {
    const c = newest.get(key(row.organization_id, row.company_id))!;
    if (row.deleted || BigInt(row.version) >= BigInt(c.version)) continue;
    updates.push(c);
    if (row.industry !== c.industry) {
      count(row.organization_id, row.industry, -1);
      count(row.organization_id, c.industry, 1);
    }
  }
  if (updates.length === 0) return;
  await em.execute(
    `update analytics.company_projection p set industry = u.industry, version = u.version, updated_at = u.updated_at
     from json_to_recordset(?::json) as u(organization_id uuid, company_id uuid, industry text, version bigint, updated_at timestamptz)
     where p.organization_id = u.organization_id and p.company_id = u.company_id`,
    [JSON.stringify(updates.map((c) => ({ ...companyRow(c), industry: c.industry, version: c.version, updated_at: c.event.time.toISOString() })))],
  );
  const moved = [...deltas.values()].filter((d) => d.delta !== 0);
  if (moved.length === 0) return;
  await em.execute(
    `insert into analytics.overview_industry_count as c (organization_id, industry, company_count)
     select organization_id, industry, delta from json_to_recordset(?::json) as d(organization_id uuid, industry text, delta bigint) order by organization_id, industry
     on conflict (organization_id, industry) do update set company_count = c.company_count + excluded.company_count`,
    [JSON.stringify(moved)],
  );
}

/** The key columns of a company's projection row, and the event time it was last changed at. */
function companyRow(c: CompanyVersion): { organization_id: string; company_id: string; updated_at: string } {
  return { organization_id: c.event.organizationId, company_id: c.companyId, updated_at: c.event.time.toISOString() };
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

/** One contact of {@link upsertContacts}: what {@link upsertContact} takes. */
export interface ContactVersion {
  event: ReceivedEvent;
  contactId: string;
  version: string;
}

/**
 * {@link upsertContact} for many contacts at once, with the outcome of applying them one by one in
 * any order, in at most three statements: the contacts not projected yet are inserted with their
 * organizations' counters; the rows of the others are locked in key order; each live one whose
 * newest version here is newer is updated to it.
 */
export async function upsertContacts(em: EntityManager, contacts: readonly ContactVersion[]): Promise<void> {
  const first = contacts[0];
  if (contacts.length === 1 && first) return upsertContact(em, first.event, first.contactId, first.version);
  const key = (org: string, id: string) => `${org}/${id}`.toLowerCase();
  const [firstSeen, rest] = splitFirstSeen(contacts, (c) => key(c.event.organizationId, c.contactId));
  const row = (c: ContactVersion) => ({
    organization_id: c.event.organizationId,
    contact_id: c.contactId,
    version: c.version,
    updated_at: c.event.time.toISOString(),
  });
  const inserted = await em.execute<{ organization_id: string; contact_id: string }[]>(
    `with input as (
       select * from json_to_recordset(?::json) as i(organization_id uuid, contact_id uuid, version bigint, updated_at timestamptz)
     ), ins as (
       insert into analytics.contact_projection (organization_id, contact_id, version, deleted, updated_at)
       select organization_id, contact_id, version, false, updated_at from input order by organization_id, contact_id
       on conflict (organization_id, contact_id) do nothing
       returning organization_id, contact_id
     ), counted as (
       insert into analytics.overview_contact_count as c (organization_id, contact_count)
       select organization_id, count(*) from ins group by organization_id order by organization_id
       on conflict (organization_id) do update set contact_count = c.contact_count + excluded.contact_count
     )
     select organization_id, contact_id from ins`,
    [JSON.stringify(firstSeen.map(row))],
  );
  const done = new Set(inserted.map((r) => key(r.organization_id, r.contact_id)));
  const newest = newestByKey([...firstSeen.filter((c) => !done.has(key(c.event.organizationId, c.contactId))), ...rest], (c) =>
    key(c.event.organizationId, c.contactId),
  );
  if (newest.size === 0) return;
  const stored = await em.execute<{ organization_id: string; contact_id: string; version: string; deleted: boolean }[]>(
    `select p.organization_id, p.contact_id, p.version::text as version, p.deleted
     from analytics.contact_projection p join json_to_recordset(?::json) as k(organization_id uuid, contact_id uuid) using (organization_id, contact_id)
     order by p.organization_id, p.contact_id for update of p`,
    [JSON.stringify([...newest.values()].map(row))],
  );
  if (stored.length !== newest.size) throw new Error(`contact_projection rows vanished (${newest.size} expected, ${stored.length} found)`);
  const updates = stored
    .map((r) => ({ r, c: newest.get(key(r.organization_id, r.contact_id))! }))
    .filter(({ r, c }) => !r.deleted && BigInt(r.version) < BigInt(c.version))
    .map(({ c }) => row(c));
  if (updates.length === 0) return;
  await em.execute(
    `update analytics.contact_projection p set version = u.version, updated_at = u.updated_at
     from json_to_recordset(?::json) as u(organization_id uuid, contact_id uuid, version bigint, updated_at timestamptz)
     where p.organization_id = u.organization_id and p.contact_id = u.contact_id`,
    [JSON.stringify(updates)],
  );
}

/**
 * `items` split by `key`: the first item of each key, in order, and the items whose key came before.
 */
function splitFirstSeen<T>(items: readonly T[], key: (item: T) => string): [T[], T[]] {
  const seen = new Set<string>();
  const firstSeen: T[] = [];
  const rest: T[] = [];
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) rest.push(item);
    else {
      seen.add(k);
      firstSeen.push(item);
    }
  }
  return [firstSeen, rest];
}

/** Per `key`, the item with the highest aggregate `version` (the first of equal ones). */
function newestByKey<T extends { version: string }>(items: readonly T[], key: (item: T) => string): Map<string, T> {
  const newest = new Map<string, T>();
  for (const item of items) {
    const k = key(item);
    const known = newest.get(k);
    if (!known || BigInt(item.version) > BigInt(known.version)) newest.set(k, item);
  }
  return newest;
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
