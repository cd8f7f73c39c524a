import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { contactsEventsV1 } from '@crm/contracts';
import { organizationId } from '@crm/testing';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * The customer-master routes of customer.routes.ts through the gateway, against the real
 * contacts-svc, Postgres and outbox: company hierarchies, contact referrals, and tag assignment
 * (idempotency, one event per change, tenancy, If-Match, concurrent assignments).
 */
let suite: TestSuite;

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

type Json = Record<string, unknown>;
interface Record_ {
  id: string;
  version: number;
  tags: string[];
}
interface Summary {
  id: string;
  name: string;
  domain: string | null;
  accountType: string | null;
  status: string | null;
  parentCompanyId: string | null;
}
interface HierarchyNode {
  company: Summary;
  subsidiaries: HierarchyNode[];
}
interface Hierarchy {
  ancestors: Summary[];
  company: Summary;
  subsidiaries: HierarchyNode[];
  truncated: boolean;
}

const ACME = organizationId('acme');
const NO_SUCH_ID = '0193a5b2-7c4e-7d3a-9f1e-000000000000';

async function problemOf(res: Response, status: number): Promise<Json> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

async function create<T = Record_>(plural: 'companies' | 'contacts' | 'tags', json: Json, as = 'admin@acme.test'): Promise<T> {
  const res = await suite.api(`/api/v1/${plural}`, { method: 'POST', json, as });
  expect({ status: res.status, body: res.status === 201 ? 'ok' : await res.text() }).toEqual({ status: 201, body: 'ok' });
  return (await res.json()) as T;
}

async function sql<T>(query: string, params: unknown[] = []): Promise<T[]> {
  return suite.contacts.orm.em.fork().execute<T[]>(query, params);
}

/** Names in the tree, indented by level: easy to compare whole. */
function outline(nodes: HierarchyNode[], level = 0): string[] {
  return nodes.flatMap((n) => [`${'  '.repeat(level)}${n.company.name}`, ...outline(n.subsidiaries, level + 1)]);
}

async function hierarchy(id: string, query = '', as = 'admin@acme.test'): Promise<Hierarchy> {
  const res = await suite.api(`/api/v1/companies/${id}/hierarchy${query}`, { as });
  expect({ status: res.status, body: res.status === 200 ? 'ok' : await res.text() }).toEqual({ status: 200, body: 'ok' });
  return (await res.json()) as Hierarchy;
}

describe('GET /companies/{id}/hierarchy', () => {
  it('shows the ancestors nearest first and the subsidiaries as a tree down to depth (default 3), live companies only', async () => {
    const u = unique('H');
    const root = await create('companies', { name: `${u} Root`, domain: `${u.toLowerCase()}.com`, accountType: 'customer', status: 'active' });
    const mid = await create('companies', { name: `${u} Mid`, parentCompanyId: root.id });
    const self = await create('companies', { name: `${u} Self`, parentCompanyId: mid.id });
    const b = await create('companies', { name: `${u} B`, parentCompanyId: self.id });
    const a = await create('companies', { name: `${u} A`, parentCompanyId: self.id });
    const a1 = await create('companies', { name: `${u} A1`, parentCompanyId: a.id });
    const a11 = await create('companies', { name: `${u} A11`, parentCompanyId: a1.id });
    await create('companies', { name: `${u} A111`, parentCompanyId: a11.id });
    const gone = await create('companies', { name: `${u} Gone`, parentCompanyId: self.id });
    expect((await suite.api(`/api/v1/companies/${gone.id}`, { method: 'DELETE' })).status).toBe(204);

    const h = await hierarchy(self.id);
    expect(h.ancestors.map((c) => c.name)).toEqual([`${u} Mid`, `${u} Root`]);
    expect(h.ancestors[1]).toEqual({
      id: root.id,
      name: `${u} Root`,
      domain: `${u.toLowerCase()}.com`,
      accountType: 'customer',
      status: 'active',
      parentCompanyId: null,
    });
    expect(h.company).toEqual({ id: self.id, name: `${u} Self`, domain: null, accountType: null, status: null, parentCompanyId: mid.id });
    // siblings by name; three levels down, not the fourth; the deleted subsidiary not at all
    expect(outline(h.subsidiaries)).toEqual([`${u} A`, `  ${u} A1`, `    ${u} A11`, `${u} B`]);
    expect(h.subsidiaries[0]?.company).toMatchObject({ id: a.id, parentCompanyId: self.id });
    expect(h.subsidiaries.find((n) => n.company.id === b.id)?.subsidiaries).toEqual([]);
    expect(h.truncated).toBe(false);

    expect(outline((await hierarchy(self.id, '?depth=1')).subsidiaries)).toEqual([`${u} A`, `${u} B`]);
    expect(outline((await hierarchy(self.id, '?depth=10')).subsidiaries)).toEqual([`${u} A`, `  ${u} A1`, `    ${u} A11`, `      ${u} A111`, `${u} B`]);
    // the root has no ancestors; a leaf no subsidiaries
    const top = await hierarchy(root.id, '?depth=2');
    expect(top.ancestors).toEqual([]);
    expect(outline(top.subsidiaries)).toEqual([`${u} Mid`, `  ${u} Self`]);
    expect((await hierarchy(b.id)).subsidiaries).toEqual([]);
    // every role reads
    expect((await hierarchy(self.id, '', 'viewer@acme.test')).company.id).toBe(self.id);
  });

  it('refuses a depth outside 1..10 (400 naming depth)', async () => {
    const company = await create('companies', { name: unique('Depth') });
    for (const depth of ['0', '11', 'deep', '1.5']) {
      const problem = await problemOf(await suite.api(`/api/v1/companies/${company.id}/hierarchy?depth=${depth}`), 400);
      expect(problem).toMatchObject({ errors: [{ field: 'depth' }] });
    }
  });

  it("answers 404 for another organization's company, a deleted one, no company and a malformed id", async () => {
    const theirs = await create('companies', { name: unique('Globex Sub') }, 'admin@globex.test');
    await problemOf(await suite.api(`/api/v1/companies/${theirs.id}/hierarchy`), 404);
    const ours = await create('companies', { name: unique('Ours') });
    await problemOf(await suite.api(`/api/v1/companies/${ours.id}/hierarchy`, { as: 'admin@globex.test' }), 404);
    expect((await suite.api(`/api/v1/companies/${ours.id}`, { method: 'DELETE' })).status).toBe(204);
    await problemOf(await suite.api(`/api/v1/companies/${ours.id}/hierarchy`), 404);
    await problemOf(await suite.api(`/api/v1/companies/${NO_SUCH_ID}/hierarchy`), 404);
    await problemOf(await suite.api('/api/v1/companies/not-a-uuid/hierarchy'), 404);
  });

  it('never follows a link into another organization, even one written around the rules', async () => {
    const parent = await create('companies', { name: unique('Acme Parent') });
    const child = await create('companies', { name: unique('Acme Child'), parentCompanyId: parent.id });
    const foreign = await create('companies', { name: unique('Globex Intruder') }, 'admin@globex.test');
    // the rules refuse this (422 PARENT_COMPANY_NOT_FOUND); the database alone does not
    await sql('update contacts.company set parent_company_id = ? where id = ?', [child.id, foreign.id]);
    await sql('update contacts.company set parent_company_id = ? where id = ?', [foreign.id, parent.id]);

    const ours = await hierarchy(child.id);
    expect(ours.ancestors.map((c) => c.id)).toEqual([parent.id]);
    expect(ours.subsidiaries).toEqual([]);
    const theirs = await hierarchy(foreign.id, '', 'admin@globex.test');
    expect({ ancestors: theirs.ancestors, subsidiaries: theirs.subsidiaries }).toEqual({ ancestors: [], subsidiaries: [] });
  });

  it('stays bounded on a cycle written around the rules', async () => {
    const x = await create('companies', { name: unique('Cycle X') });
    const y = await create('companies', { name: unique('Cycle Y'), parentCompanyId: x.id });
    await sql('update contacts.company set parent_company_id = ? where id = ?', [y.id, x.id]);
    const h = await hierarchy(x.id, '?depth=10');
    expect(h.ancestors.map((c) => c.id)).toEqual([y.id]);
    expect(h.subsidiaries.map((n) => [n.company.id, n.subsidiaries])).toEqual([[y.id, []]]);
  });

  it('holds at most 1,000 subsidiaries and then says truncated, every one under a parent it also holds', async () => {
    const top = await create('companies', { name: unique('Conglomerate') });
    const holding = await create('companies', { name: unique('Holding'), parentCompanyId: top.id });
    // 1,100 subsidiaries of the holding: seeded in one statement (1,100 POSTs would only slow the test)
    await sql(
      `insert into contacts.company (id, organization_id, name, owner_id, created_at, updated_at, created_by, parent_company_id)
       select gen_random_uuid(), ?, 'Sub ' || lpad(g::text, 4, '0'), 'seed', now(), now(), 'seed', ? from generate_series(1, 1100) g`,
      [ACME, holding.id],
    );
    const h = await hierarchy(top.id, '?depth=2');
    expect(h.truncated).toBe(true);
    expect(h.subsidiaries.map((n) => n.company.id)).toEqual([holding.id]);
    const subs = h.subsidiaries[0]!.subsidiaries;
    expect(subs).toHaveLength(999);
    expect(new Set(subs.map((n) => n.company.id)).size).toBe(999);
    expect(subs.every((n) => n.company.parentCompanyId === holding.id)).toBe(true);

    const whole = await hierarchy(holding.id, '?depth=1');
    expect({ truncated: whole.truncated, count: whole.subsidiaries.length }).toEqual({ truncated: true, count: 1000 });
    // sorted by name within what is held
    const names = whole.subsidiaries.map((n) => n.company.name);
    expect(names).toEqual([...names].sort());
  });
});

describe('GET /contacts/{id}/referrals', () => {
  it('pages the live contacts this contact referred, in creation order, with cursors', async () => {
    const referrer = await create('contacts', { firstName: unique('Referrer') });
    const referred: string[] = [];
    for (let i = 0; i < 5; i++) referred.push((await create('contacts', { firstName: unique('Referred'), referredById: referrer.id })).id);
    await create('contacts', { firstName: unique('Unrelated') });
    const gone = await create('contacts', { firstName: unique('Gone'), referredById: referrer.id });
    expect((await suite.api(`/api/v1/contacts/${gone.id}`, { method: 'DELETE' })).status).toBe(204);

    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await suite.api(`/api/v1/contacts/${referrer.id}/referrals?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { data: (Record_ & { referredById: string })[]; nextCursor: string | null };
      expect(page.data.every((c) => c.referredById === referrer.id)).toBe(true);
      seen.push(...page.data.map((c) => c.id));
      sizes.push(page.data.length);
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(referred);
    expect(sizes).toEqual([2, 2, 1]);

    const all = (await (await suite.api(`/api/v1/contacts/${referrer.id}/referrals`, { as: 'viewer@acme.test' })).json()) as Json;
    expect(all).toMatchObject({ nextCursor: null });
    expect((all['data'] as Json[]).map((c) => c['id'])).toEqual(referred);
    const none = (await (await suite.api(`/api/v1/contacts/${referred[0]}/referrals`)).json()) as Json;
    expect(none).toEqual({ data: [], nextCursor: null });
  });

  it("answers 404 for another organization's contact (never an empty page), no contact and a malformed id", async () => {
    const ours = await create('contacts', { firstName: unique('Ours') });
    await create('contacts', { firstName: unique('Referred'), referredById: ours.id });
    await problemOf(await suite.api(`/api/v1/contacts/${ours.id}/referrals`, { as: 'admin@globex.test' }), 404);
    const theirs = await create('contacts', { firstName: unique('Theirs') }, 'admin@globex.test');
    await create('contacts', { firstName: unique('Their Referred'), referredById: theirs.id }, 'admin@globex.test');
    await problemOf(await suite.api(`/api/v1/contacts/${theirs.id}/referrals`), 404);
    await problemOf(await suite.api(`/api/v1/contacts/${NO_SUCH_ID}/referrals`), 404);
    await problemOf(await suite.api('/api/v1/contacts/nope/referrals'), 404);
  });

  it('refuses a page size outside 1..200 and a cursor it did not make (400)', async () => {
    const referrer = await create('contacts', { firstName: unique('Referrer') });
    for (const query of ['limit=0', 'limit=201', 'cursor=not-a-cursor', 'sort=name']) {
      await problemOf(await suite.api(`/api/v1/contacts/${referrer.id}/referrals?${query}`), 400);
    }
  });
});

describe('PUT / DELETE /{companies,contacts}/{id}/tags/{tagId}', () => {
  const resources = [
    { plural: 'companies', subject: 'crm.contacts.company.updated', codec: contactsEventsV1.CompanyUpdated, body: () => ({ name: unique('Tagged Co') }) },
    { plural: 'contacts', subject: 'crm.contacts.contact.updated', codec: contactsEventsV1.ContactUpdated, body: () => ({ firstName: unique('Tagged') }) },
  ] as const;

  for (const r of resources) {
    /** The `updated` events of the record in the outbox, decoded: their changes. */
    const updates = async (id: string) => {
      const rows = await sql<{ payload: Buffer }>('select payload from contacts.outbox where aggregate_id = ? and subject = ? order by occurred_at, id', [
        id,
        r.subject,
      ]);
      return rows.map((row) => r.codec.decode(new Uint8Array(row.payload)).changes);
    };
    const tagPath = (id: string, tagId: string) => `/api/v1/${r.plural}/${id}/tags/${tagId}`;

    it(`${r.plural}: assigns and removes a tag idempotently, with one updated event per change`, async () => {
      const tag = await create('tags', { name: unique('VIP') });
      const record = await create(r.plural, r.body());
      expect(await updates(record.id)).toEqual([]);

      const put = await suite.api(tagPath(record.id, tag.id), { method: 'PUT' });
      expect(put.status).toBe(200);
      expect(put.headers.get('etag')).toBe('"2"');
      expect(await put.json()).toMatchObject({ id: record.id, tags: [tag.id], version: 2 });
      expect(await updates(record.id)).toEqual([[{ field: 'tags', oldValue: [], newValue: [tag.id] }]]);

      // again: unchanged, no event
      const again = await suite.api(tagPath(record.id, tag.id), { method: 'PUT' });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ tags: [tag.id], version: 2 });
      expect(await updates(record.id)).toHaveLength(1);

      // a second tag keeps the first
      const other = await create('tags', { name: unique('Partner') });
      expect(await (await suite.api(tagPath(record.id, other.id), { method: 'PUT' })).json()).toMatchObject({ tags: [tag.id, other.id], version: 3 });

      const del = await suite.api(tagPath(record.id, tag.id), { method: 'DELETE' });
      expect({ status: del.status, body: await del.text() }).toEqual({ status: 204, body: '' });
      const events = await updates(record.id);
      expect(events).toHaveLength(3);
      expect(events[2]).toEqual([{ field: 'tags', oldValue: [tag.id, other.id], newValue: [other.id] }]);

      // removing what is not assigned: 204, nothing changes (an unknown tag id too)
      for (const tagId of [tag.id, NO_SUCH_ID]) expect((await suite.api(tagPath(record.id, tagId), { method: 'DELETE' })).status).toBe(204);
      expect(await updates(record.id)).toHaveLength(3);
      expect(await (await suite.api(`/api/v1/${r.plural}/${record.id}`)).json()).toMatchObject({ tags: [other.id], version: 4 });
    });

    it(`${r.plural}: answers 422 TAG_NOT_FOUND for another organization's tag or a deleted one, and stores nothing`, async () => {
      const record = await create(r.plural, r.body());
      const theirs = await create('tags', { name: unique('Theirs') }, 'admin@globex.test');
      const gone = await create('tags', { name: unique('Gone') });
      expect((await suite.api(`/api/v1/tags/${gone.id}`, { method: 'DELETE' })).status).toBe(204);
      for (const tagId of [theirs.id, gone.id, NO_SUCH_ID, 'not-a-tag']) {
        const problem = await problemOf(await suite.api(tagPath(record.id, tagId), { method: 'PUT' }), 422);
        expect(problem).toMatchObject({ code: 'TAG_NOT_FOUND' });
      }
      expect(await (await suite.api(`/api/v1/${r.plural}/${record.id}`)).json()).toMatchObject({ tags: [], version: 1 });
      expect(await updates(record.id)).toEqual([]);
    });

    it(`${r.plural}: answers 404 for another organization's record, whatever the tag`, async () => {
      const theirs = await create(r.plural, r.body(), 'admin@globex.test');
      const ourTag = await create('tags', { name: unique('Ours') });
      const theirTag = await create('tags', { name: unique('Theirs') }, 'admin@globex.test');
      for (const tagId of [ourTag.id, theirTag.id]) {
        await problemOf(await suite.api(tagPath(theirs.id, tagId), { method: 'PUT' }), 404);
        await problemOf(await suite.api(tagPath(theirs.id, tagId), { method: 'DELETE' }), 404);
      }
      await problemOf(await suite.api(tagPath(NO_SUCH_ID, ourTag.id), { method: 'PUT' }), 404);
      expect(await (await suite.api(`/api/v1/${r.plural}/${theirs.id}`, { as: 'admin@globex.test' })).json()).toMatchObject({ tags: [], version: 1 });
    });

    it(`${r.plural}: honours If-Match (412 when stale, even when nothing would change)`, async () => {
      const tag = await create('tags', { name: unique('Gold') });
      const record = await create(r.plural, r.body());
      await problemOf(await suite.api(tagPath(record.id, tag.id), { method: 'PUT', headers: { 'If-Match': '"7"' } }), 412);
      await problemOf(await suite.api(tagPath(record.id, tag.id), { method: 'PUT', headers: { 'If-Match': 'garbage' } }), 412);
      const put = await suite.api(tagPath(record.id, tag.id), { method: 'PUT', headers: { 'If-Match': '"1"' } });
      expect(await put.json()).toMatchObject({ tags: [tag.id], version: 2 });
      // the tag is there, but the precondition is stale
      await problemOf(await suite.api(tagPath(record.id, tag.id), { method: 'PUT', headers: { 'If-Match': '"1"' } }), 412);
      await problemOf(await suite.api(tagPath(record.id, tag.id), { method: 'DELETE', headers: { 'If-Match': '"1"' } }), 412);
      expect((await suite.api(tagPath(record.id, tag.id), { method: 'DELETE', headers: { 'If-Match': '"2"' } })).status).toBe(204);
      expect(await updates(record.id)).toHaveLength(2);
    });

    it(`${r.plural}: concurrent assignments of different tags all land (no lost update)`, async () => {
      const tags = await Promise.all(Array.from({ length: 6 }, () => create('tags', { name: unique('Concurrent') })));
      const record = await create(r.plural, r.body());
      const answers = await Promise.all(tags.map((t) => suite.api(tagPath(record.id, t.id), { method: 'PUT' })));
      expect(answers.map((a) => a.status)).toEqual(tags.map(() => 200));
      const stored = (await (await suite.api(`/api/v1/${r.plural}/${record.id}`)).json()) as Record_;
      expect({ tags: [...stored.tags].sort(), version: stored.version }).toEqual({ tags: tags.map((t) => t.id).sort(), version: 1 + tags.length });
      expect(await updates(record.id)).toHaveLength(tags.length);
    });

    it(`${r.plural}: lets a rep change only their own records' tags, and no viewer`, async () => {
      const tag = await create('tags', { name: unique('Rep') });
      const others = await create(r.plural, r.body());
      const own = await create(r.plural, r.body(), 'rep@acme.test');
      await problemOf(await suite.api(tagPath(others.id, tag.id), { method: 'PUT', as: 'rep@acme.test' }), 403);
      await problemOf(await suite.api(tagPath(own.id, tag.id), { method: 'PUT', as: 'viewer@acme.test' }), 403);
      expect((await suite.api(tagPath(own.id, tag.id), { method: 'PUT', as: 'rep@acme.test' })).status).toBe(200);
      expect((await suite.api(tagPath(own.id, tag.id), { method: 'DELETE', as: 'rep@acme.test' })).status).toBe(204);
      expect((await suite.api(tagPath(others.id, tag.id), { method: 'PUT', as: 'manager@acme.test' })).status).toBe(200);
    });
  }
});
