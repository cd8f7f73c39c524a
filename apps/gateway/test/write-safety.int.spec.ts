import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cutTrigger, organizationId, startReplyCutter, waitFor, type ReplyCutter } from '@crm/testing';
import { startTestSuite, type TestSuite } from './support/suite.ts';

let suite: TestSuite;
/** One cutter per contacts-svc replica, armed together: the next reply of either is lost. */
const cutters: ReplyCutter[] = [];
const trigger = cutTrigger();
const cutter = { cutNextReply: () => new Promise<void>((resolve) => (trigger.armed = resolve)) };

beforeAll(async () => {
  suite = await startTestSuite({
    contactsAddress: async (port) => {
      const replicaCutter = await startReplyCutter(port, trigger);
      cutters.push(replicaCutter);
      return replicaCutter.address;
    },
  });
});

afterAll(async () => {
  await suite?.close();
  for (const c of cutters) await c.close();
});

async function storedCompanies(name: string): Promise<number> {
  const [row] = await suite.contacts.orm.em
    .fork()
    .execute<{ n: string }[]>('select count(*) as n from contacts.company where organization_id = ? and name = ?', [organizationId('acme'), name]);
  return Number(row?.n);
}

describe('Idempotency-Key end to end', () => {
  it('creates one record when the reply is lost after the service committed and the client retries', async () => {
    const name = `Lost Reply ${Date.now()}`;
    const request = { method: 'POST', json: { name, industry: 'energy' }, headers: { 'idempotency-key': `lost-${Date.now()}` } };
    const cut = cutter.cutNextReply();
    const first = await suite.api('/api/v1/companies', request);
    await cut;
    expect(first.status).toBeGreaterThanOrEqual(500); // the client never learnt the outcome…
    expect(await storedCompanies(name)).toBe(1); // …but the write had committed

    const retry = await suite.api('/api/v1/companies', request);
    expect(retry.status).toBe(201);
    const again = await suite.api('/api/v1/companies', request);
    expect(again.status).toBe(201);
    expect((await again.json()) as { id: string }).toEqual(expect.objectContaining({ id: ((await retry.json()) as { id: string }).id }));
    expect(await storedCompanies(name)).toBe(1);
  });

  it('creates one record for concurrent retries with the same key', async () => {
    const name = `Concurrent ${Date.now()}`;
    const request = { method: 'POST', json: { name }, headers: { 'idempotency-key': `conc-${Date.now()}` } };
    const answers = await Promise.all(Array.from({ length: 8 }, () => suite.api('/api/v1/companies', request)));
    // the gateway answers one 201 and 409 "in progress" to the others, or replays: never a second record
    expect(answers.map((a) => a.status).every((s) => s === 201 || s === 409)).toBe(true);
    expect(await storedCompanies(name)).toBe(1);
  });

  it('refuses the same key for a different request at the service too (422), storing nothing', async () => {
    const name = `Reused ${Date.now()}`;
    const key = `reuse-${Date.now()}`;
    const cut = cutter.cutNextReply();
    expect((await suite.api('/api/v1/companies', { method: 'POST', json: { name }, headers: { 'idempotency-key': key } })).status).toBeGreaterThanOrEqual(500);
    await cut;
    // the gateway releases the key of a failed attempt: wait for that, so the service's own check answers
    await waitFor('the gateway to release the key', async () => {
      const rows = await suite.contacts.orm.em.fork().execute('select 1 from gateway.idempotency_key where key = ?', [key]);
      return rows.length === 0;
    });
    const other = await suite.api('/api/v1/companies', { method: 'POST', json: { name: `${name} (other)` }, headers: { 'idempotency-key': key } });
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await storedCompanies(`${name} (other)`)).toBe(0);
  });
});

describe('concurrent writes to one record', () => {
  async function created(): Promise<string> {
    const res = await suite.api('/api/v1/companies', { method: 'POST', json: { name: `Contended ${Date.now()}` } });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  it('answers one 200 and 412 to the rest when parallel PATCHes carry the same If-Match — never a 500', async () => {
    const id = await created();
    const patches = await Promise.all(
      ['retail', 'energy', 'finance', 'health'].map((industry) =>
        suite.api(`/api/v1/companies/${id}`, { method: 'PATCH', json: { industry }, headers: { 'if-match': '"1"' } }),
      ),
    );
    const statuses = patches.map((p) => p.status).sort();
    expect(statuses).toEqual([200, 412, 412, 412]);
    expect(await (await suite.api(`/api/v1/companies/${id}`)).json()).toMatchObject({ version: 2 });
  });

  it('applies every parallel PATCH without If-Match, one after the other', async () => {
    const id = await created();
    const fields = [{ industry: 'retail' }, { employees: 7 }, { domain: `contended-${Date.now()}.example` }, { address: { city: 'Oslo' } }];
    const patches = await Promise.all(fields.map((json) => suite.api(`/api/v1/companies/${id}`, { method: 'PATCH', json })));
    expect(patches.map((p) => p.status)).toEqual([200, 200, 200, 200]);
    const company = await (await suite.api(`/api/v1/companies/${id}`)).json();
    expect(company).toMatchObject({ industry: 'retail', employees: 7, address: { city: 'Oslo' }, version: 5 });
  });
});
