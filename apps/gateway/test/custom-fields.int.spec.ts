import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestSuite, type TestSuite } from './support/suite.ts';

let suite: TestSuite;

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

type Json = Record<string, unknown>;
const PATH = '/api/v1/custom-fields';
const key = (prefix: string) => `${prefix}_${randomBytes(4).toString('hex')}`;

async function post(json: Json, as = 'admin@acme.test'): Promise<Response> {
  return suite.api(PATH, { method: 'POST', json, as });
}

async function created(json: Json): Promise<Json & { id: string }> {
  const res = await post(json);
  expect({ status: res.status, body: res.status === 201 ? 'ok' : await res.text() }).toEqual({ status: 201, body: 'ok' });
  return (await res.json()) as Json & { id: string };
}

async function expectProblem(res: Response, status: number, shape: Json): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(await res.json()).toMatchObject(shape);
}

describe('/api/v1/custom-fields', () => {
  it('creates definitions (active by default) and lists them filtered by object', async () => {
    const tier = await created({ object: 'company', key: key('tier'), label: 'Tier', type: 'select', options: ['gold', 'silver'], defaultValue: 'gold' });
    expect(tier).toMatchObject({
      object: 'company',
      type: 'select',
      options: ['gold', 'silver'],
      defaultValue: 'gold',
      required: false,
      active: true,
      version: 1,
    });
    const amount = await created({ object: 'company', key: key('budget'), label: 'Budget', type: 'decimal', defaultValue: '1250.00', active: false });
    expect(amount).toMatchObject({ defaultValue: '1250.00', active: false });
    const nick = await created({ object: 'contact', key: key('nick'), label: 'Nickname', type: 'text' });

    const res = await suite.api(`${PATH}?object=company&limit=200`);
    expect(res.status).toBe(200);
    const ids = ((await res.json()) as { data: { id: string }[] }).data.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining([tier.id, amount.id]));
    expect(ids).not.toContain(nick.id);
  });

  it('answers 409 CUSTOM_FIELD_KEY_TAKEN to a second live definition of one key and object, and frees the key on delete', async () => {
    const k = key('region');
    const first = await created({ object: 'company', key: k, label: 'Region', type: 'text' });
    await expectProblem(await post({ object: 'company', key: k, label: 'Region again', type: 'text' }), 409, {
      code: 'CUSTOM_FIELD_KEY_TAKEN',
      errors: [{ field: 'key' }],
    });
    await created({ object: 'contact', key: k, label: 'Region', type: 'text' }); // another object: fine
    expect((await suite.api(`${PATH}/${first.id}`, { method: 'DELETE' })).status).toBe(204);
    await created({ object: 'company', key: k, label: 'Region', type: 'text' });
  });

  it('refuses changing key or type (400 naming the field) and allows label changes', async () => {
    const field = await created({ object: 'company', key: key('score'), label: 'Score', type: 'number' });
    const patch = (json: Json) => suite.api(`${PATH}/${field.id}`, { method: 'PATCH', json });
    await expectProblem(await patch({ key: key('other') }), 400, { errors: [{ field: 'key' }] });
    await expectProblem(await patch({ type: 'text' }), 400, { errors: [{ field: 'type' }] });
    const ok = await patch({ label: 'Lead score' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ label: 'Lead score', key: field['key'], type: 'number', version: 2 });
  });

  it('enforces the options rules with 400 naming options, and a default valid for the type', async () => {
    await expectProblem(await post({ object: 'company', key: key('a'), label: 'A', type: 'select', options: [] }), 400, { errors: [{ field: 'options' }] });
    await expectProblem(await post({ object: 'company', key: key('b'), label: 'B', type: 'multiselect', options: ['x', 'x'] }), 400, {
      errors: [{ field: 'options' }],
    });
    await expectProblem(await post({ object: 'company', key: key('c'), label: 'C', type: 'text', options: ['x'] }), 400, { errors: [{ field: 'options' }] });
    await expectProblem(await post({ object: 'company', key: key('d'), label: 'D', type: 'select', options: ['x'], defaultValue: 'y' }), 400, {
      errors: [{ field: 'defaultValue' }],
    });
    await expectProblem(await post({ object: 'company', key: 'Not-A-Key', label: 'E', type: 'text' }), 400, { errors: [{ field: 'key' }] });
  });

  it('lets only crm-admin write (403 for a manager and a rep), everyone read', async () => {
    const field = await created({ object: 'company', key: key('owner_team'), label: 'Team', type: 'text' });
    for (const as of ['manager@acme.test', 'rep@acme.test']) {
      await expectProblem(await post({ object: 'company', key: key('x'), label: 'X', type: 'text' }, as), 403, { type: 'urn:crm:problem:forbidden' });
      await expectProblem(await suite.api(`${PATH}/${field.id}`, { method: 'PATCH', json: { label: 'Y' }, as }), 403, { type: 'urn:crm:problem:forbidden' });
      expect((await suite.api(`${PATH}/${field.id}`, { as })).status).toBe(200);
    }
  });
});
