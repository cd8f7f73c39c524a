import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Tags and tag rules through the gateway: what is theirs beyond the conventions every record
 * resource keeps (those run in conformance.int.spec.ts).
 */
let suite: TestSuite;

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

type Json = Record<string, unknown>;
interface Tag {
  id: string;
  name: string;
  color: string | null;
  description: string | null;
  active: boolean;
  version: number;
}

async function problemOf(res: Response, status: number): Promise<Json> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

async function createTag(json: Json, as = 'admin@acme.test'): Promise<Tag> {
  const res = await suite.api('/api/v1/tags', { method: 'POST', json, as });
  expect({ status: res.status, body: res.status === 201 ? 'ok' : await res.text() }).toEqual({ status: 201, body: 'ok' });
  return (await res.json()) as Tag;
}

async function createRule(json: Json, as = 'admin@acme.test'): Promise<Response> {
  return suite.api('/api/v1/tag-rules', { method: 'POST', json, as });
}

describe('tags', () => {
  it('defaults active to true, keeps an explicit false, and stores the color lower-cased', async () => {
    const tag = await createTag({ name: unique('VIP'), color: '#1E90FF' });
    expect(tag).toMatchObject({ active: true, color: '#1e90ff', description: null });
    expect(await createTag({ name: unique('Dormant'), active: false })).toMatchObject({ active: false, color: null });

    const patched = await suite.api(`/api/v1/tags/${tag.id}`, { method: 'PATCH', json: { color: '#ABCDEF', active: false } });
    expect(await patched.json()).toMatchObject({ color: '#abcdef', active: false, version: 2 });
    // the same color in another case changes nothing
    const same = await suite.api(`/api/v1/tags/${tag.id}`, { method: 'PATCH', json: { color: '#abcDEF' } });
    expect(await same.json()).toMatchObject({ color: '#abcdef', version: 2 });
  });

  it('refuses a name taken by a live tag in any case (409 TAG_NAME_TAKEN), and frees it when that tag is deleted', async () => {
    const name = unique('Partner');
    const first = await createTag({ name });
    const taken = await problemOf(await suite.api('/api/v1/tags', { method: 'POST', json: { name: name.toUpperCase() } }), 409);
    expect(taken).toMatchObject({ code: 'TAG_NAME_TAKEN', errors: [{ field: 'name' }] });

    const other = await createTag({ name: unique('Other') });
    const renamed = await problemOf(await suite.api(`/api/v1/tags/${other.id}`, { method: 'PATCH', json: { name: ` ${name.toLowerCase()} ` } }), 409);
    expect(renamed).toMatchObject({ code: 'TAG_NAME_TAKEN' });

    // another organization has its own names
    await createTag({ name }, 'admin@globex.test');

    expect((await suite.api(`/api/v1/tags/${first.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await createTag({ name: name.toLowerCase() })).toMatchObject({ name: name.toLowerCase() });
  });

  it('refuses a color that is not #rrggbb with 400 naming color, and stores nothing', async () => {
    for (const color of ['red', '#fff', '1e90ff', '#12345g']) {
      const name = unique('Colorful');
      const problem = await problemOf(await suite.api('/api/v1/tags', { method: 'POST', json: { name, color } }), 400);
      expect(problem).toMatchObject({ errors: [{ field: 'color' }] });
      const list = await suite.api(`/api/v1/tags?q=${encodeURIComponent(name)}`);
      expect(((await list.json()) as { data: Tag[] }).data).toEqual([]);
    }
    const tag = await createTag({ name: unique('Plain') });
    expect(await problemOf(await suite.api(`/api/v1/tags/${tag.id}`, { method: 'PATCH', json: { color: 'blue' } }), 400)).toMatchObject({
      errors: [{ field: 'color' }],
    });
  });

  it('lets only crm-admin write tags (403 for a manager), every role read them', async () => {
    const tag = await createTag({ name: unique('Config') });
    await problemOf(await suite.api('/api/v1/tags', { method: 'POST', json: { name: unique('Mine') }, as: 'manager@acme.test' }), 403);
    await problemOf(await suite.api(`/api/v1/tags/${tag.id}`, { method: 'PATCH', json: { description: 'x' }, as: 'rep@acme.test' }), 403);
    expect((await suite.api(`/api/v1/tags/${tag.id}`, { as: 'rep@acme.test' })).status).toBe(200);
  });
});

describe('tag rules', () => {
  it('creates a rule (active by default) and lists it by tag', async () => {
    const tag = await createTag({ name: unique('Customer') });
    const res = await createRule({ object: 'company', field: 'account_type', value: 'Customer', tagId: tag.id });
    expect(res.status).toBe(201);
    const rule = (await res.json()) as Json;
    expect(rule).toMatchObject({ object: 'company', field: 'account_type', value: 'Customer', tagId: tag.id, active: true });
    const list = (await (await suite.api(`/api/v1/tag-rules?tagId=${tag.id}`)).json()) as { data: Json[] };
    expect(list.data.map((r) => r['id'])).toEqual([rule['id']]);
  });

  it('refuses writes by anyone but crm-admin (403) and stores nothing', async () => {
    const tag = await createTag({ name: unique('Gold') });
    const json = { object: 'company', field: 'rating', value: 'hot', tagId: tag.id };
    for (const as of ['manager@acme.test', 'rep@acme.test', 'viewer@acme.test']) {
      expect(await problemOf(await createRule(json, as), 403)).toMatchObject({ type: 'urn:crm:problem:forbidden' });
    }
    const rule = (await (await createRule(json)).json()) as Json;
    await problemOf(await suite.api(`/api/v1/tag-rules/${String(rule['id'])}`, { method: 'PATCH', json: { value: 'warm' }, as: 'manager@acme.test' }), 403);
    await problemOf(await suite.api(`/api/v1/tag-rules/${String(rule['id'])}`, { method: 'DELETE', as: 'manager@acme.test' }), 403);
    const list = (await (await suite.api(`/api/v1/tag-rules?tagId=${tag.id}`, { as: 'manager@acme.test' })).json()) as { data: Json[] };
    expect(list.data).toEqual([expect.objectContaining({ id: rule['id'], value: 'hot', version: 1 })]);
  });

  it("answers 422 TAG_NOT_FOUND for another organization's tag, and for a deleted one", async () => {
    const theirs = await createTag({ name: unique('Theirs') }, 'admin@globex.test');
    const foreign = await problemOf(await createRule({ object: 'company', field: 'status', value: 'active', tagId: theirs.id }), 422);
    expect(foreign).toMatchObject({ code: 'TAG_NOT_FOUND', errors: [{ field: 'tagId' }] });

    const gone = await createTag({ name: unique('Gone') });
    expect((await suite.api(`/api/v1/tags/${gone.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await problemOf(await createRule({ object: 'company', field: 'status', value: 'active', tagId: gone.id }), 422)).toMatchObject({
      code: 'TAG_NOT_FOUND',
    });
  });

  it('refuses a field the object does not have, or a missing one, with 400 naming it', async () => {
    const tag = await createTag({ name: unique('Mismatch') });
    const wrong = await problemOf(await createRule({ object: 'contact', field: 'account_type', value: 'customer', tagId: tag.id }), 400);
    expect(wrong).toMatchObject({ errors: [{ field: 'field' }] });
    const missing = await problemOf(await createRule({ value: 'customer', tagId: tag.id }), 400);
    expect((missing['errors'] as { field: string }[]).map((e) => e.field).sort()).toEqual(['field', 'object']);
    const notYesNo = await problemOf(await createRule({ object: 'contact', field: 'is_decision_maker', value: 'maybe', tagId: tag.id }), 400);
    expect(notYesNo).toMatchObject({ errors: [{ field: 'value' }] });
  });

  it('keeps a tag while rules assign it (422 TAG_HAS_RULES); deletes it once they are gone', async () => {
    const tag = await createTag({ name: unique('Sticky') });
    const rule = (await (await createRule({ object: 'contact', field: 'source', value: 'referral', tagId: tag.id })).json()) as Json;
    expect(await problemOf(await suite.api(`/api/v1/tags/${tag.id}`, { method: 'DELETE' }), 422)).toMatchObject({ code: 'TAG_HAS_RULES' });
    expect((await suite.api(`/api/v1/tags/${tag.id}`)).status).toBe(200);
    expect((await suite.api(`/api/v1/tag-rules/${String(rule['id'])}`, { method: 'DELETE' })).status).toBe(204);
    expect((await suite.api(`/api/v1/tags/${tag.id}`, { method: 'DELETE' })).status).toBe(204);
  });
});
