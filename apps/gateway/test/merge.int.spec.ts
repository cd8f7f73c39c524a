import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { contactsEventsV1, mergesEventsV1 } from '@crm/contracts';
import { drainDuplicateScan } from '@crm/contacts-svc';
import { subscribeEvents, type EventLog } from './support/events.ts';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Merges and their undo through the gateway: what the survivor takes, what moves, what the
 * merged records become (404 with where they went, gone from lists, search, segments and
 * duplicates), the events, the checks (shape, If-Match, roles, tenancy, merged already) — and the
 * acceptance test: merge then undo restores byte-identical records (every column of the merged
 * ones; the survivor's and moved records' too except version and updated_at, which move forward).
 */
let suite: TestSuite;
let db: pg.Client;
let events: EventLog;

beforeAll(async () => {
  suite = await startTestSuite({ gateway: { RATE_LIMIT_PER_MINUTE: '100000' } });
  db = new pg.Client({ connectionString: suite.infra.databaseUrl });
  await db.connect();
  events = await subscribeEvents(suite, 'crm.contacts.contact.>', 'crm.contacts.company.>', 'crm.contacts.segment.>');
});

afterAll(async () => {
  await events?.close();
  await db?.end();
  await suite?.close();
});

type Json = Record<string, unknown>;
interface Rec {
  id: string;
  version: number;
  [key: string]: unknown;
}
interface Merge {
  id: string;
  object: string;
  survivorId: string;
  mergedIds: string[];
  fieldChoices: Record<string, string>;
  createdAt: string;
  undoDeadline: string;
  undoneAt: string | null;
  undoneBy: string | null;
  conflicts: { recordId: string; field: string }[];
  movedIds: string[];
  survivor?: Rec;
}

const ADMIN = 'admin@acme.test';
const GLOBEX = 'admin@globex.test';

async function ok<T>(res: Response, status = 200): Promise<T> {
  expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
  return (await res.json()) as T;
}

async function problemOf(res: Response, status: number): Promise<Json> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

const token = () => unique('m').replaceAll('-', '').toLowerCase();
/** Creates through the API; likely duplicates are created on purpose here. */
const create = async (plural: string, json: Json, as = ADMIN): Promise<Rec> =>
  ok<Rec>(await suite.api(`/api/v1/${plural}?allowDuplicate=true`, { method: 'POST', json, as }), 201);
const get = async (plural: string, id: string): Promise<Rec> => ok<Rec>(await suite.api(`/api/v1/${plural}/${id}`));
const merge = (plural: string, survivor: Rec, json: Json, init: { as?: string; ifMatch?: string } = {}) =>
  suite.api(`/api/v1/${plural}/${survivor.id}/merge`, {
    method: 'POST',
    json,
    as: init.as ?? ADMIN,
    headers: { 'if-match': init.ifMatch ?? `"${survivor.version}"` },
  });
const undo = (mergeId: string, as = ADMIN, headers: Record<string, string> = {}) =>
  suite.api(`/api/v1/merges/${mergeId}/undo`, { method: 'POST', as, headers });
/** Every column of rows as Postgres prints them (`t::text`): numerics to the last digit, nothing through JS numbers. */
async function rowTexts(table: 'contact' | 'company', ids: string[]): Promise<Map<string, string>> {
  const { rows: found } = await db.query<{ id: string; row: string }>(`select t.id, t::text as row from contacts.${table} t where id = any($1::uuid[])`, [ids]);
  return new Map(found.map((r) => [r.id, r.row]));
}

/** Rows of `table` as Postgres stores them (`to_jsonb`: every column, timestamps to the microsecond). */
async function rows(table: 'contact' | 'company', ids: string[]): Promise<Map<string, Json>> {
  const { rows: found } = await db.query<{ row: Json }>(`select to_jsonb(t.*) as row from contacts.${table} t where id = any($1::uuid[])`, [ids]);
  return new Map(found.map((r) => [String(r.row['id']), r.row]));
}
const without = (row: Json | Rec | undefined, ...keys: string[]): Json => Object.fromEntries(Object.entries(row ?? {}).filter(([k]) => !keys.includes(k)));

describe('merging contacts', () => {
  it('merges into the survivor, hides the merged ones everywhere, and an undo restores byte-identical records', async () => {
    const t = token();
    const co = await create('companies', { name: `Analytical Engines ${t}` });
    const [t1, t2, t3] = await Promise.all([1, 2, 3].map(async (n) => create('tags', { name: `Merge tag ${n} ${t}` })));
    const survivor = await create('contacts', {
      firstName: 'Ada',
      lastName: `Lovelace ${t}`,
      email: `ada.${t}@gmail.com`,
      jobTitle: 'Engineer',
      companyId: co.id,
      tags: [t1!.id],
    });
    const m1 = await create('contacts', {
      firstName: 'Ada',
      lastName: `Lovelace ${t}`,
      email: `a.d.a.${t}+work@gmail.com`,
      phone: '+44 20 7946 0958',
      jobTitle: 'CTO',
      companyId: co.id,
      isPrimary: true,
      doNotCall: true,
      tags: [t2!.id],
      annualRevenue: undefined,
      customFields: undefined,
    });
    const m2 = await create('contacts', { firstName: 'Augusta', lastName: `King ${t}`, email: `augusta.${t}@example.com`, tags: [t3!.id, t1!.id] });
    const referred = await create('contacts', { firstName: 'Charles', lastName: `Babbage ${t}`, referredById: m2.id });
    const form = new FormData();
    form.append('file', new Blob(['a signed contract']), 'contract.txt');
    const document = await ok<Rec>(await suite.api(`/api/v1/contacts/${m1.id}/documents`, { method: 'POST', body: form }), 201);
    const segment = await ok<Rec>(
      await suite.api('/api/v1/segments', { method: 'POST', json: { name: `Merge seg ${t}`, object: 'contact', kind: 'static' } }),
      201,
    );
    expect((await suite.api(`/api/v1/segments/${segment.id}/members/${m1.id}`, { method: 'PUT' })).status).toBe(204);

    const ids = [survivor.id, m1.id, m2.id, referred.id];
    const before = new Map(await Promise.all(ids.map(async (id) => [id, await get('contacts', id)] as const)));
    const beforeRows = await rows('contact', ids);

    const res = await merge('contacts', survivor, { mergedIds: [m1.id, m2.id], fieldChoices: { jobTitle: m1.id } });
    const merged = await ok<Merge>(res, 201);
    expect(res.headers.get('location')).toBe(`/api/v1/merges/${merged.id}`);
    expect(merged).toMatchObject({
      object: 'contact',
      survivorId: survivor.id,
      mergedIds: [m1.id, m2.id],
      fieldChoices: { jobTitle: m1.id },
      undoneAt: null,
      conflicts: [],
      movedIds: [referred.id, document.id],
    });
    expect(Date.parse(merged.undoDeadline) - Date.parse(merged.createdAt)).toBe(30 * 86_400_000);
    // the survivor: chosen job title, a phone it had not (with its text as typed), tags unioned,
    // the opt-out kept, primary of the company the merged primary contact left
    expect(merged.survivor).toMatchObject({
      id: survivor.id,
      jobTitle: 'CTO',
      email: `ada.${t}@gmail.com`,
      phone: '+442079460958',
      phoneOriginal: '+44 20 7946 0958',
      doNotCall: true,
      isPrimary: true,
      companyId: co.id,
      mergedIntoId: null,
      version: survivor.version + 1,
    });
    expect(merged.survivor!['tags']).toEqual([t1!.id, t2!.id, t3!.id]);
    expect(await get('contacts', survivor.id)).toEqual(merged.survivor);

    // merged records: 404 saying where they went; gone from lists, search and segments
    for (const id of [m1.id, m2.id]) {
      expect(await problemOf(await suite.api(`/api/v1/contacts/${id}`), 404)).toMatchObject({
        code: 'CONTACT_MERGED',
        mergedIntoId: survivor.id,
        mergeId: merged.id,
      });
    }
    expect((await ok<{ data: Rec[] }>(await suite.api(`/api/v1/contacts?companyId=${co.id}`))).data.map((r) => r.id)).toEqual([survivor.id]);
    expect((await ok<{ data: Rec[] }>(await suite.api(`/api/v1/contacts?q=${encodeURIComponent(`Lovelace ${t}`)}`))).data.map((r) => r.id)).toEqual([
      survivor.id,
    ]);
    const members = await ok<{ data: Rec[] }>(await suite.api(`/api/v1/segments/${segment.id}/members`));
    expect(members.data.map((r) => r.id)).toEqual([survivor.id]);
    expect(await get('contacts', referred.id)).toMatchObject({ referredById: survivor.id, version: referred.version + 1 });
    expect(await ok<Rec>(await suite.api(`/api/v1/documents/${document.id}`))).toMatchObject({ contactId: survivor.id, version: document.version + 1 });
    const stored = await rows('contact', [m1.id]);
    expect(stored.get(m1.id)).toMatchObject({ merged_into_id: survivor.id, deleted_at: expect.any(String) });

    // events: the survivor's and the referral's updates, then merged
    const mergedEvent = await events.next('crm.contacts.contact.merged', (m) => Buffer.from(m.data).includes(merged.id));
    expect(mergesEventsV1.ContactMerged.decode(mergedEvent.data)).toEqual({ survivorId: survivor.id, mergedIds: [m1.id, m2.id], mergeId: merged.id });
    const survivorUpdated = await events.next(
      'crm.contacts.contact.updated',
      (m) => contactsEventsV1.ContactUpdated.decode(m.data).contact?.id === survivor.id,
    );
    expect(contactsEventsV1.ContactUpdated.decode(survivorUpdated.data).changedFields.sort()).toEqual(
      ['do_not_call', 'is_primary', 'job_title', 'phone', 'phone_original', 'tags'].sort(),
    );
    await events.next('crm.contacts.contact.updated', (m) => contactsEventsV1.ContactUpdated.decode(m.data).contact?.id === referred.id);
    await events.next('crm.contacts.segment.member_added', (m) => Buffer.from(m.data).includes(survivor.id));

    // undo: merged records exactly as they were, the others as they were but for version and updatedAt
    const undone = await ok<Merge>(await undo(merged.id));
    expect(undone).toMatchObject({ id: merged.id, undoneAt: expect.any(String), undoneBy: expect.any(String), conflicts: [] });
    const afterRows = await rows('contact', ids);
    for (const id of [m1.id, m2.id]) {
      expect(await get('contacts', id)).toEqual(before.get(id));
      expect(afterRows.get(id)).toEqual(beforeRows.get(id));
    }
    for (const r of [survivor, referred]) {
      const now = await get('contacts', r.id);
      expect(without(now, 'version', 'updatedAt')).toEqual(without(before.get(r.id), 'version', 'updatedAt'));
      expect(now.version).toBe(r.version + 2);
      expect(without(afterRows.get(r.id), 'version', 'updated_at')).toEqual(without(beforeRows.get(r.id), 'version', 'updated_at'));
    }
    expect((await ok<{ data: Rec[] }>(await suite.api(`/api/v1/segments/${segment.id}/members`))).data.map((r) => r.id)).toEqual([m1.id]);
    const documentNow = await ok<Rec>(await suite.api(`/api/v1/documents/${document.id}`));
    expect(without(documentNow, 'version', 'updatedAt')).toEqual(without(document, 'version', 'updatedAt'));
    const unmerged = await events.next('crm.contacts.contact.unmerged', (m) => Buffer.from(m.data).includes(merged.id));
    expect(mergesEventsV1.ContactUnmerged.decode(unmerged.data)).toMatchObject({ survivorId: survivor.id, restoredIds: [m1.id, m2.id], conflicts: [] });
    await events.next('crm.contacts.segment.member_removed', (m) => Buffer.from(m.data).includes(survivor.id));

    // once only
    expect(await problemOf(await undo(merged.id), 409)).toMatchObject({ code: 'MERGE_ALREADY_UNDONE' });
    expect(await ok<Merge>(await suite.api(`/api/v1/merges/${merged.id}`, { as: 'viewer@acme.test' }))).toEqual(undone);
  });

  it('keeps the survivor’s later changes on undo and reports them; tags added since stay', async () => {
    const t = token();
    const [tagA, tagB, later] = await Promise.all(['a', 'b', 'later'].map(async (n) => create('tags', { name: `Undo tag ${n} ${t}` })));
    const survivor = await create('contacts', { firstName: 'Grace', lastName: `Hopper ${t}`, jobTitle: 'Rear Admiral', tags: [tagA!.id] });
    const other = await create('contacts', { firstName: 'Grace', lastName: `Hopper ${t}`, jobTitle: 'Programmer', department: 'Navy', tags: [tagB!.id] });
    const merged = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id], fieldChoices: { jobTitle: other.id } }), 201);
    expect(merged.survivor).toMatchObject({ jobTitle: 'Programmer', department: 'Navy' });
    const changed = await ok<Rec>(
      await suite.api(`/api/v1/contacts/${survivor.id}`, { method: 'PATCH', json: { jobTitle: 'Commodore', tags: [tagA!.id, tagB!.id, later!.id] } }),
    );
    const undone = await ok<Merge>(await undo(merged.id));
    expect(undone.conflicts).toEqual([{ recordId: survivor.id, field: 'jobTitle' }]);
    const now = await get('contacts', survivor.id);
    expect(now).toMatchObject({ jobTitle: 'Commodore', department: null, version: changed.version + 1 });
    expect(now['tags']).toEqual([tagA!.id, later!.id]);
    expect(await get('contacts', other.id)).toMatchObject({ jobTitle: 'Programmer', department: 'Navy', mergedIntoId: null });
  });

  it('checks the request: shape (400), If-Match (412), roles (403), ids of the organization (404), merged already (409) — changing nothing', async () => {
    const t = token();
    const survivor = await create('contacts', { firstName: 'Check', lastName: `Survivor ${t}` });
    const other = await create('contacts', { firstName: 'Check', lastName: `Other ${t}` });
    const theirs = await create('contacts', { firstName: 'Check', lastName: `Theirs ${t}` }, GLOBEX);
    const fields = async (body: Json) => ((await problemOf(await merge('contacts', survivor, body), 400))['errors'] as { field: string }[]).map((e) => e.field);
    expect(await fields({ mergedIds: [] })).toEqual(['mergedIds']);
    expect(await fields({ mergedIds: Array.from({ length: 11 }, () => other.id) })).toEqual(['mergedIds']);
    expect(await fields({ mergedIds: [other.id, other.id] })).toEqual(['mergedIds.1']);
    expect(await fields({ mergedIds: [survivor.id] })).toEqual(['mergedIds.0']);
    expect(await fields({ mergedIds: ['nope'] })).toEqual(['mergedIds.0']);
    expect(await fields({ mergedIds: [other.id], fieldChoices: { tags: other.id } })).toEqual(['fieldChoices.tags']);
    expect(await fields({ mergedIds: [other.id], fieldChoices: { jobTitle: theirs.id } })).toEqual(['fieldChoices.jobTitle']);
    expect(await fields({ mergedIds: [other.id], extra: true })).toEqual(['extra']);
    expect(await problemOf(await merge('contacts', survivor, { mergedIds: [other.id] }, { ifMatch: `"${survivor.version + 5}"` }), 412)).toMatchObject({
      code: 'VERSION_MISMATCH',
    });
    await problemOf(await merge('contacts', survivor, { mergedIds: [other.id] }, { as: 'rep@acme.test' }), 403);
    // another organization's contact, as merged record or as survivor: 404, nothing merged
    expect(await problemOf(await merge('contacts', survivor, { mergedIds: [theirs.id] }), 404)).toMatchObject({ code: 'CONTACT_NOT_FOUND' });
    await problemOf(await merge('contacts', theirs, { mergedIds: [other.id] }), 404);
    await problemOf(await merge('contacts', survivor, { mergedIds: [other.id] }, { as: GLOBEX }), 404);
    expect(await get('contacts', other.id)).toEqual(other);
    expect(await get('contacts', survivor.id)).toEqual(survivor);
    expect(await ok<Rec>(await suite.api(`/api/v1/contacts/${theirs.id}`, { as: GLOBEX }))).toEqual(theirs);
    // merged already
    const merged = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id] }), 201);
    const third = await create('contacts', { firstName: 'Check', lastName: `Third ${t}` });
    expect(await problemOf(await merge('contacts', third, { mergedIds: [other.id] }), 409)).toMatchObject({ code: 'CONTACT_ALREADY_MERGED' });
    // a merge and its undo are the organization's own
    await problemOf(await suite.api(`/api/v1/merges/${merged.id}`, { as: GLOBEX }), 404);
    await problemOf(await undo(merged.id, GLOBEX), 404);
    await problemOf(await undo(merged.id, 'rep@acme.test'), 403);
    await problemOf(await suite.api('/api/v1/merges/not-a-uuid'), 404);
  });

  it('refuses an undo that would restore a unique value taken since (409 naming it), changing nothing', async () => {
    const t = token();
    const survivor = await create('contacts', { firstName: 'Uniq', lastName: `Survivor ${t}` });
    const other = await create('contacts', { firstName: 'Uniq', lastName: `Other ${t}`, email: `uniq.${t}@example.com` });
    const merged = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id], fieldChoices: { email: survivor.id } }), 201);
    // the merged contact's address is free again: someone takes it
    const taker = await create('contacts', { firstName: 'Taker', lastName: t, email: `uniq.${t}@example.com` });
    expect(await problemOf(await undo(merged.id), 409)).toMatchObject({ code: 'MERGE_UNDO_CONFLICT', errors: [{ field: 'email' }] });
    expect((await ok<Merge>(await suite.api(`/api/v1/merges/${merged.id}`))).undoneAt).toBeNull();
    expect(await problemOf(await suite.api(`/api/v1/contacts/${other.id}`), 404)).toMatchObject({ code: 'CONTACT_MERGED' });
    // freed again, the undo goes through
    await ok(await suite.api(`/api/v1/contacts/${taker.id}`, { method: 'PATCH', json: { email: null } }));
    await ok(await undo(merged.id));
    expect(await get('contacts', other.id)).toMatchObject({ email: `uniq.${t}@example.com` });
  });

  it('refuses an undo after 30 days (409), changing nothing', async () => {
    const t = token();
    const survivor = await create('contacts', { firstName: 'Old', lastName: `Merge ${t}` });
    const other = await create('contacts', { firstName: 'Old', lastName: `Merge ${t}` });
    const merged = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id] }), 201);
    await db.query(`update contacts.record_merge set created_at = created_at - interval '30 days 1 minute' where id = $1`, [merged.id]);
    expect(await problemOf(await undo(merged.id), 409)).toMatchObject({ code: 'MERGE_UNDO_EXPIRED' });
    expect(await problemOf(await suite.api(`/api/v1/contacts/${other.id}`), 404)).toMatchObject({ code: 'CONTACT_MERGED' });
    expect((await ok<Merge>(await suite.api(`/api/v1/merges/${merged.id}`))).undoneAt).toBeNull();
  });

  it('takes merged records out of the duplicate lists, and an undo brings the pair back', async () => {
    const t = token();
    const a = await create('contacts', { firstName: 'Dup', lastName: `Merge ${t}`, email: `dup.${t}@gmail.com` });
    const b = await create('contacts', { firstName: 'Dup', lastName: `Merge ${t}`, email: `d.u.p.${t}@gmail.com` });
    // the whole list (all pages) after the scan has caught up (drained deterministically, no polling)
    const listed = async () => {
      await drainDuplicateScan(suite.contacts.orm);
      let cursor: string | null = '';
      while (cursor !== null) {
        const page: { data: { records: Rec[] }[]; nextCursor: string | null } = await ok(
          await suite.api(`/api/v1/contacts/duplicates?minScore=1&limit=200${cursor ? `&cursor=${cursor}` : ''}`),
        );
        if (page.data.some((p) => p.records.some((r) => r.id === b.id))) return true;
        cursor = page.nextCursor;
      }
      return false;
    };
    expect(await listed()).toBe(true);
    const merged = await ok<Merge>(await merge('contacts', a, { mergedIds: [b.id] }), 201);
    expect(await listed()).toBe(false);
    await ok(await undo(merged.id));
    expect(await listed()).toBe(true);
  });
});

describe('merging companies', () => {
  it('moves contacts and subsidiaries to the survivor; an undo puts them back exactly', async () => {
    const t = token();
    const survivor = await create('companies', { name: `Globodyne ${t}`, domain: `globodyne-${t}.com`, industry: 'energy' });
    const merged = await create('companies', {
      name: `Globodyne ${t} Inc.`,
      website: `https://www.globodyne-${t}.com`,
      employees: 1200,
      address: { city: 'Denver' },
    });
    const subsidiary = await create('companies', { name: `Globodyne Europe ${t}`, parentCompanyId: merged.id });
    const primary = await create('contacts', { firstName: 'Dick', lastName: `Harper ${t}`, companyId: merged.id, isPrimary: true });
    const plain = await create('contacts', { firstName: 'Jane', lastName: `Harper ${t}`, companyId: merged.id });
    const ours = await create('contacts', { firstName: 'Jack', lastName: `McCallister ${t}`, companyId: survivor.id, isPrimary: true });
    const companyIds = [survivor.id, merged.id, subsidiary.id];
    const contactIds = [primary.id, plain.id, ours.id];
    const beforeCompanies = await rows('company', companyIds);
    const beforeContacts = await rows('contact', contactIds);
    const beforeJson = new Map(await Promise.all(companyIds.map(async (id) => [id, await get('companies', id)] as const)));

    const result = await ok<Merge>(await merge('companies', survivor, { mergedIds: [merged.id] }), 201);
    expect(result.movedIds.sort()).toEqual([primary.id, plain.id, subsidiary.id].sort());
    expect(result.survivor).toMatchObject({ domain: `globodyne-${t}.com`, industry: 'energy', employees: 1200, address: { city: 'Denver' } });
    expect(await get('contacts', primary.id)).toMatchObject({ companyId: survivor.id, isPrimary: false });
    expect(await get('contacts', plain.id)).toMatchObject({ companyId: survivor.id });
    expect(await get('contacts', ours.id)).toEqual(ours);
    expect(await get('companies', subsidiary.id)).toMatchObject({ parentCompanyId: survivor.id });
    expect(await problemOf(await suite.api(`/api/v1/companies/${merged.id}`), 404)).toMatchObject({ code: 'COMPANY_MERGED', mergedIntoId: survivor.id });
    const hierarchy = await ok<{ subsidiaries: { company: { id: string } }[] }>(await suite.api(`/api/v1/companies/${survivor.id}/hierarchy`));
    expect(hierarchy.subsidiaries.map((s) => s.company.id)).toEqual([subsidiary.id]);
    const mergedEvent = await events.next('crm.contacts.company.merged', (m) => Buffer.from(m.data).includes(result.id));
    expect(mergesEventsV1.CompanyMerged.decode(mergedEvent.data)).toEqual({ survivorId: survivor.id, mergedIds: [merged.id], mergeId: result.id });

    const undone = await ok<Merge>(await undo(result.id));
    expect(undone.conflicts).toEqual([]);
    const afterCompanies = await rows('company', companyIds);
    const afterContacts = await rows('contact', contactIds);
    expect(afterCompanies.get(merged.id)).toEqual(beforeCompanies.get(merged.id));
    expect(await get('companies', merged.id)).toEqual(beforeJson.get(merged.id));
    for (const id of [survivor.id, subsidiary.id]) {
      expect(without(afterCompanies.get(id), 'version', 'updated_at')).toEqual(without(beforeCompanies.get(id), 'version', 'updated_at'));
      expect(without(await get('companies', id), 'version', 'updatedAt')).toEqual(without(beforeJson.get(id), 'version', 'updatedAt'));
    }
    for (const id of contactIds)
      expect(without(afterContacts.get(id), 'version', 'updated_at')).toEqual(without(beforeContacts.get(id), 'version', 'updated_at'));
    expect(afterContacts.get(ours.id)).toEqual(beforeContacts.get(ours.id));
    await events.next('crm.contacts.company.unmerged', (m) => Buffer.from(m.data).includes(result.id));
  });

  it('refuses to merge a company into its own subsidiary (422)', async () => {
    const t = token();
    const parent = await create('companies', { name: `Parent ${t}` });
    const child = await create('companies', { name: `Child ${t}`, parentCompanyId: parent.id });
    expect(await problemOf(await merge('companies', child, { mergedIds: [parent.id] }), 422)).toMatchObject({ code: 'MERGE_INTO_SUBSIDIARY' });
    expect(await get('companies', parent.id)).toEqual(parent);
    // the other way round is fine: the subsidiary goes into its parent
    const result = await ok<Merge>(await merge('companies', parent, { mergedIds: [child.id] }), 201);
    expect(result.survivor).toMatchObject({ id: parent.id, parentCompanyId: null });
  });
});

describe('precision, concurrency and undo conflicts', () => {
  it('carries a numeric(19,4) amount exactly into the survivor, and an undo restores the merged row byte-identical', async () => {
    const t = token();
    const survivor = await create('companies', { name: `Precise ${t}` });
    const rich = await create('companies', { name: `Precise ${t} Ltd`, annualRevenue: { amount: '1234567890123.4567', currency: 'USD' }, employees: 7 });
    const before = await rowTexts('company', [survivor.id, rich.id]);
    const result = await ok<Merge>(await merge('companies', survivor, { mergedIds: [rich.id] }), 201);
    expect(result.survivor).toMatchObject({ annualRevenue: { amount: '1234567890123.4567', currency: 'USD' } });
    const { rows: stored } = await db.query<{ amount: string }>('select annual_revenue_amount::text as amount from contacts.company where id = $1', [
      survivor.id,
    ]);
    expect(stored[0]?.amount).toBe('1234567890123.4567');
    await ok(await undo(result.id));
    const after = await rowTexts('company', [survivor.id, rich.id]);
    expect(after.get(rich.id)).toBe(before.get(rich.id));
    const { rows: back } = await db.query<{ amount: string | null }>('select annual_revenue_amount::text as amount from contacts.company where id = $1', [
      survivor.id,
    ]);
    expect(back[0]?.amount ?? null).toBeNull();
  });

  it('overlapping merges at once: each succeeds or answers 404/409/412/503 — never 500 — and every merged record leads to a live one', async () => {
    const t = token();
    const recs = await Promise.all([0, 1, 2, 3].map(async (n) => create('contacts', { firstName: 'Race', lastName: `Merge${n} ${t}`, companyId: undefined })));
    const [a, b, c, d] = recs as [Rec, Rec, Rec, Rec];
    const attempts = [
      merge('contacts', a, { mergedIds: [b.id, c.id] }),
      merge('contacts', c, { mergedIds: [a.id, d.id] }),
      merge('contacts', b, { mergedIds: [d.id] }),
      merge('contacts', d, { mergedIds: [c.id, b.id] }),
    ];
    const statuses = (await Promise.all(attempts)).map((r) => r.status);
    for (const status of statuses) expect([201, 404, 409, 412, 503]).toContain(status);
    expect(statuses).toContain(201);
    const { rows: state } = await db.query<{ id: string; merged_into_id: string | null; deleted_at: Date | null }>(
      'select id, merged_into_id, deleted_at from contacts.contact where id = any($1::uuid[])',
      [recs.map((r) => r.id)],
    );
    const live = new Set(state.filter((r) => r.deleted_at === null).map((r) => r.id));
    expect(live.size).toBeGreaterThan(0);
    // a record merged into one that was merged in turn (d → b, then b → a) is a chain, as when the
    // merges had run one after the other: following it must end at a live record, never loop
    const into = new Map(state.map((r) => [r.id, r.merged_into_id]));
    for (const r of state) {
      let at = r.id;
      for (let hops = 0; !live.has(at) && hops < state.length; hops++) at = into.get(at) ?? at;
      expect({ from: r.id, endsLive: live.has(at) }).toEqual({ from: r.id, endsLive: true });
    }
  });

  it('an undo that would close a hierarchy cycle clears the restored parent and reports it', async () => {
    const t = token();
    const survivor = await create('companies', { name: `Cycle Survivor ${t}` });
    const z = await create('companies', { name: `Cycle Z ${t}` });
    const b = await create('companies', { name: `Cycle B ${t}`, parentCompanyId: z.id });
    const child = await create('companies', { name: `Cycle Child ${t}`, parentCompanyId: b.id });
    const result = await ok<Merge>(await merge('companies', survivor, { mergedIds: [b.id], fieldChoices: { parentCompanyId: survivor.id } }), 201);
    expect(await get('companies', child.id)).toMatchObject({ parentCompanyId: survivor.id });
    // meanwhile Z goes under the child: undoing naively would make child → B → Z → child
    await ok(await suite.api(`/api/v1/companies/${z.id}`, { method: 'PATCH', json: { parentCompanyId: child.id } }));
    const undone = await ok<Merge>(await undo(result.id));
    expect(undone.conflicts).toEqual([{ recordId: b.id, field: 'parentCompanyId' }]);
    expect(await get('companies', b.id)).toMatchObject({ parentCompanyId: null, mergedIntoId: null });
    expect(await get('companies', child.id)).toMatchObject({ parentCompanyId: b.id });
    const { rows: cycle } = await db.query(
      `with recursive up(id, parent, depth) as (select id, parent_company_id, 0 from contacts.company where id = $1
         union all select c.id, c.parent_company_id, up.depth + 1 from contacts.company c join up on c.id = up.parent where up.depth < 10)
       select 1 from up where depth > 0 and id = $1`,
      [child.id],
    );
    expect(cycle).toEqual([]);
  });

  it('an undo clears a restored reference to a record deleted since, and keeps a later primary contact', async () => {
    const t = token();
    const oldCo = await create('companies', { name: `Old Employer ${t}` });
    const gone = await create('companies', { name: `Gone Employer ${t}` });
    const survivor = await create('contacts', { firstName: 'Prim', lastName: `Ary ${t}`, companyId: oldCo.id, isPrimary: true });
    const other = await create('contacts', { firstName: 'Prim', lastName: `Ary ${t}`, companyId: gone.id });
    const result = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id], fieldChoices: { companyId: other.id } }), 201);
    expect(result.survivor).toMatchObject({ companyId: gone.id, isPrimary: false });
    // meanwhile a colleague becomes primary of oldCo, and the merged contact's company is deleted
    const colleague = await create('contacts', { firstName: 'Col', lastName: `League ${t}`, companyId: oldCo.id, isPrimary: true });
    expect((await suite.api(`/api/v1/companies/${gone.id}`, { method: 'DELETE' })).status).toBe(204);
    const undone = await ok<Merge>(await undo(result.id));
    expect(undone.conflicts).toEqual(
      expect.arrayContaining([
        { recordId: survivor.id, field: 'isPrimary' },
        { recordId: other.id, field: 'companyId' },
      ]),
    );
    expect(await get('contacts', survivor.id)).toMatchObject({ companyId: oldCo.id, isPrimary: false });
    expect(await get('contacts', colleague.id)).toMatchObject({ companyId: oldCo.id, isPrimary: true });
    expect(await get('contacts', other.id)).toMatchObject({ companyId: null, mergedIntoId: null });
  });

  it('replays an undo retried with its Idempotency-Key', async () => {
    const t = token();
    const survivor = await create('contacts', { firstName: 'Idem', lastName: `Potent ${t}` });
    const other = await create('contacts', { firstName: 'Idem', lastName: `Potent ${t}` });
    const result = await ok<Merge>(await merge('contacts', survivor, { mergedIds: [other.id] }), 201);
    const key = `undo-${t}`;
    const first = await undo(result.id, ADMIN, { 'idempotency-key': key });
    const second = await undo(result.id, ADMIN, { 'idempotency-key': key });
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await second.json()).toEqual(await first.json());
    // without the key a second undo is refused
    expect(await problemOf(await undo(result.id), 409)).toMatchObject({ code: 'MERGE_ALREADY_UNDONE' });
  });
});
