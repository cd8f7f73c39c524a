import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Segments through the gateway: what is theirs beyond the conventions every record resource keeps
 * (those run in conformance.int.spec.ts) — criteria, live members, static membership, preview.
 */
let suite: TestSuite;

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

type Json = Record<string, unknown>;
interface Rec {
  id: string;
  version: number;
  [key: string]: unknown;
}
interface Members {
  object: string;
  data: Rec[];
  nextCursor: string | null;
}

async function ok<T>(res: Response, status = 200): Promise<T> {
  expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
  return (await res.json()) as T;
}

async function problemOf(res: Response, status: number): Promise<Json> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

const post = async (path: string, json: Json, as = 'admin@acme.test'): Promise<Rec> => ok<Rec>(await suite.api(path, { method: 'POST', json, as }), 201);
const tag = (as = 'admin@acme.test') => post('/api/v1/tags', { name: unique('Seg tag') }, as);
const company = (json: Json = {}, as = 'admin@acme.test') => post('/api/v1/companies', { name: unique('Seg Co'), ...json }, as);
const segment = (json: Json, as = 'admin@acme.test') => post('/api/v1/segments', { name: unique('Segment'), ...json }, as);
const members = async (id: string, query = ''): Promise<Members> => ok<Members>(await suite.api(`/api/v1/segments/${id}/members${query}`));
const memberIds = async (id: string): Promise<string[]> => (await members(id)).data.map((r) => r.id);

describe('dynamic segments', () => {
  it('hold the live companies matching the criteria, served as full records, with memberCount', async () => {
    const vip = await tag();
    const [a, b] = [await company({ tags: [vip.id], industry: 'software' }), await company({ tags: [vip.id], industry: 'retail' })];
    await company({ industry: 'software' });
    const seg = await segment({ object: 'company', kind: 'dynamic', criteria: { all: [{ field: 'tags', op: 'any', value: [vip.id] }] } });
    expect(seg).toMatchObject({ kind: 'dynamic', object: 'company', memberCount: 2 });

    const page = await members(seg.id);
    expect(page).toMatchObject({ object: 'company', nextCursor: null });
    expect(page.data.map((r) => r.id)).toEqual([a.id, b.id]);
    expect(page.data[0]).toEqual(await ok<Rec>(await suite.api(`/api/v1/companies/${a.id}`)));

    // keyset pages of one
    const first = await members(seg.id, '?limit=1');
    expect(first.data.map((r) => r.id)).toEqual([a.id]);
    expect((await members(seg.id, `?limit=1&cursor=${first.nextCursor}`)).data.map((r) => r.id)).toEqual([b.id]);

    // narrower criteria: a nested group
    const narrow = await segment({
      object: 'company',
      kind: 'dynamic',
      criteria: { all: [{ field: 'tags', op: 'all', value: [vip.id] }, { any: [{ field: 'industry', op: 'eq', value: 'SOFTWARE' }] }] },
    });
    expect(await memberIds(narrow.id)).toEqual([a.id]);
  });

  it('follow a company’s tags: members change when its tags are patched', async () => {
    const hot = await tag();
    const co = await company();
    const seg = await segment({ object: 'company', kind: 'dynamic', criteria: { any: [{ field: 'tags', op: 'any', value: [hot.id] }] } });
    expect(await memberIds(seg.id)).toEqual([]);

    await ok(await suite.api(`/api/v1/companies/${co.id}`, { method: 'PATCH', json: { tags: [hot.id] } }));
    expect(await memberIds(seg.id)).toEqual([co.id]);
    expect(await ok<Rec>(await suite.api(`/api/v1/segments/${seg.id}`))).toMatchObject({ memberCount: 1 });

    await ok(await suite.api(`/api/v1/companies/${co.id}`, { method: 'PATCH', json: { tags: [] } }));
    expect(await memberIds(seg.id)).toEqual([]);
    expect(await ok<Rec>(await suite.api(`/api/v1/segments/${seg.id}`))).toMatchObject({ memberCount: 0 });
  });

  it('refuse invalid criteria with 400 naming the path, and criteria on a static segment', async () => {
    const bad = await problemOf(
      await suite.api('/api/v1/segments', {
        method: 'POST',
        json: { name: unique('Bad'), object: 'company', kind: 'dynamic', criteria: { all: [{ field: 'status', op: 'eq', value: 'sleeping' }] } },
      }),
      400,
    );
    expect(bad).toMatchObject({ errors: [{ field: 'criteria.all.0.value' }] });

    const wrongObject = await problemOf(
      await suite.api('/api/v1/segments', {
        method: 'POST',
        json: { name: unique('Bad'), object: 'contact', kind: 'dynamic', criteria: { any: [{ field: 'accountType', op: 'eq', value: 'customer' }] } },
      }),
      400,
    );
    expect(wrongObject).toMatchObject({ errors: [{ field: 'criteria.any.0.field' }] });

    const missing = await problemOf(
      await suite.api('/api/v1/segments', { method: 'POST', json: { name: unique('Bad'), object: 'company', kind: 'dynamic' } }),
      400,
    );
    expect(missing).toMatchObject({ errors: [{ field: 'criteria' }] });
    const staticWithCriteria = await problemOf(
      await suite.api('/api/v1/segments', {
        method: 'POST',
        json: { name: unique('Bad'), object: 'company', kind: 'static', criteria: { all: [{ field: 'status', op: 'eq', value: 'active' }] } },
      }),
      400,
    );
    expect(staticWithCriteria).toMatchObject({ errors: [{ field: 'criteria' }] });

    const seg = await segment({ object: 'company', kind: 'dynamic', criteria: { all: [{ field: 'status', op: 'eq', value: 'active' }] } });
    const patched = await problemOf(
      await suite.api(`/api/v1/segments/${seg.id}`, {
        method: 'PATCH',
        json: { criteria: { all: [{ field: 'status', op: 'between', value: 1 }] }, kind: 'static' },
      }),
      400,
    );
    expect((patched['errors'] as { field: string }[]).map((e) => e.field).sort()).toEqual(['criteria', 'kind']);
  });

  it('preview criteria without saving: count and the first page', async () => {
    const industry = unique('preview-industry');
    const made = [await company({ industry }), await company({ industry: industry.toUpperCase() })];
    const res = await suite.api('/api/v1/segments/preview', {
      method: 'POST',
      json: { object: 'company', criteria: { all: [{ field: 'industry', op: 'eq', value: industry }] }, limit: 1 },
      as: 'viewer@acme.test',
    });
    const preview = await ok<{ count: number; object: string; members: Rec[]; nextCursor: string | null }>(res);
    expect(preview).toMatchObject({ count: 2, object: 'company', nextCursor: expect.any(String) });
    expect(preview.members.map((m) => m.id)).toEqual([made[0]!.id]);

    const invalid = await problemOf(
      await suite.api('/api/v1/segments/preview', {
        method: 'POST',
        json: { object: 'company', criteria: { any: [{ field: 'ownerId', op: 'contains', value: 'x' }] } },
      }),
      400,
    );
    expect(invalid).toMatchObject({ errors: [{ field: 'criteria.any.0.op' }] });
  });
});

describe('static segments', () => {
  it('add and remove members idempotently, counting them', async () => {
    const seg = await segment({ object: 'company', kind: 'static' });
    expect(seg).toMatchObject({ memberCount: 0 });
    const [a, b] = [await company(), await company()];
    for (const id of [b.id, a.id, a.id]) expect((await suite.api(`/api/v1/segments/${seg.id}/members/${id}`, { method: 'PUT' })).status).toBe(204);
    expect(await memberIds(seg.id)).toEqual([a.id, b.id]);
    expect(await ok<Rec>(await suite.api(`/api/v1/segments/${seg.id}`))).toMatchObject({ memberCount: 2, version: 1 });

    for (let i = 0; i < 2; i++) expect((await suite.api(`/api/v1/segments/${seg.id}/members/${a.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await memberIds(seg.id)).toEqual([b.id]);
    expect(await ok<Rec>(await suite.api(`/api/v1/segments/${seg.id}`))).toMatchObject({ memberCount: 1 });

    // a deleted record is no longer listed, nor counted
    expect((await suite.api(`/api/v1/companies/${b.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await memberIds(seg.id)).toEqual([]);
    expect(await ok<Rec>(await suite.api(`/api/v1/segments/${seg.id}`))).toMatchObject({ memberCount: 0 });
  });

  it('refuse another organization’s record, a contact in a company segment and members of a dynamic one (422)', async () => {
    const seg = await segment({ object: 'company', kind: 'static' });
    const theirs = await company({}, 'admin@globex.test');
    expect(await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members/${theirs.id}`, { method: 'PUT' }), 422)).toMatchObject({
      code: 'SEGMENT_MEMBER_NOT_FOUND',
    });
    const contact = await post('/api/v1/contacts', { firstName: 'Ada', lastName: unique('Seg') });
    await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members/${contact.id}`, { method: 'PUT' }), 422);
    await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members/not-a-uuid`, { method: 'PUT' }), 422);
    expect(await memberIds(seg.id)).toEqual([]);

    const dynamic = await segment({ object: 'company', kind: 'dynamic', criteria: { all: [{ field: 'status', op: 'eq', value: 'active' }] } });
    const mine = await company();
    expect(await problemOf(await suite.api(`/api/v1/segments/${dynamic.id}/members/${mine.id}`, { method: 'PUT' }), 422)).toMatchObject({
      code: 'SEGMENT_NOT_STATIC',
    });
  });

  it('answer 404 for another organization’s segment, and 403 to a viewer’s membership change', async () => {
    const seg = await segment({ object: 'company', kind: 'static' });
    const theirs = await company({}, 'admin@globex.test');
    await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members`, { as: 'admin@globex.test' }), 404);
    await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members/${theirs.id}`, { method: 'PUT', as: 'admin@globex.test' }), 404);
    const mine = await company();
    await problemOf(await suite.api(`/api/v1/segments/${seg.id}/members/${mine.id}`, { method: 'PUT', as: 'viewer@acme.test' }), 403);
    expect((await suite.api(`/api/v1/segments/${seg.id}/members/${mine.id}`, { method: 'PUT', as: 'manager@acme.test' })).status).toBe(204);
    expect(await memberIds(seg.id)).toEqual([mine.id]);
  });
});
