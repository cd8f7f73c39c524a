import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ServiceHandle } from '@crm/platform';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Two replicas of a service behave as one (issue 6 §3): a mixed load and racing hierarchy edits
 * against two contacts-svc replicas booted at the same time on one database and one NATS
 * (concurrent migrations, stream creation, two relays), the gateway balancing its calls over both
 * round robin. The conformance battery runs against two replicas in conformance-replicas.int.spec.ts;
 * every other gateway spec does with `CRM_TEST_CONTACTS_REPLICAS=2`.
 */

/** gRPC calls `replica` has handled, from its own metrics. */
async function callsHandled(replica: ServiceHandle): Promise<number> {
  const metric = await replica.metrics.grpcRequests.get();
  return metric.values.reduce((sum, v) => sum + v.value, 0);
}

describe('two contacts-svc replicas under load', () => {
  let suite: TestSuite;
  beforeAll(async () => {
    suite = await startTestSuite({ contactsReplicas: 2, gateway: { RATE_LIMIT_PER_MINUTE: '1000000', RATE_LIMIT_PER_IP_PER_MINUTE: '1000000' } });
  });
  afterAll(async () => {
    await suite?.close();
  });

  const create = async (json: Record<string, unknown>): Promise<string> => {
    const res = await suite.api('/api/v1/companies', { method: 'POST', json });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const parentOf = async (id: string): Promise<string | null> =>
    ((await (await suite.api(`/api/v1/companies/${id}`)).json()) as { parentCompanyId: string | null }).parentCompanyId;

  it('answers 2,000 concurrent creates, reads and patches without a 5xx, and both replicas serve', async () => {
    const TOTAL = 2000;
    const CONCURRENCY = 32;
    const companies: { id: string; version: number }[] = [];
    const contacts: string[] = [];
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const before = await Promise.all(suite.contactsReplicas.map(callsHandled));

    const record = async (res: Response, what: string): Promise<Response> => {
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) failures.push(`${what}: ${res.status} ${await res.clone().text()}`);
      return res;
    };
    const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(Math.random() * items.length)];
    /** A few companies everyone writes: rows locked, writers queue. */
    const hot = () => pick(companies.slice(0, 8))!;

    const operation = async (n: number): Promise<void> => {
      const kind = n % 20;
      if (kind <= 3 || companies.length < 8) {
        // every fourth with an Idempotency-Key; some sent twice at once, as a client retrying while its first attempt runs
        const key = n % 4 === 0 ? { 'idempotency-key': `load-${n}` } : undefined;
        // a third with one of 50 domains: unique-constraint races between the replicas (409)
        const json = { name: `Load ${n}`, industry: 'software', ...(n % 3 === 0 ? { domain: `load-${n % 50}.example` } : {}) };
        const send = () => suite.api('/api/v1/companies', { method: 'POST', json, headers: key ?? {} });
        const answers = await Promise.all(key && n % 8 === 0 ? [send(), send()] : [send()]);
        for (const res of answers) {
          await record(res, 'create company');
          if (res.status === 201) companies.push((await res.json()) as { id: string; version: number });
        }
      } else if (kind <= 5) {
        const json = { firstName: 'Load', lastName: `${n}`, email: `load-${n % 300}@example.com`, companyId: hot().id };
        const res = await record(await suite.api('/api/v1/contacts', { method: 'POST', json }), 'create contact');
        if (res.status === 201) contacts.push(((await res.json()) as { id: string }).id);
      } else if (kind <= 10) {
        await record(await suite.api(`/api/v1/companies/${pick(companies)!.id}`), 'read company');
      } else if (kind === 11) {
        await record(await suite.api('/api/v1/companies?limit=50'), 'list companies');
      } else if (kind <= 14) {
        await record(await suite.api(`/api/v1/companies/${hot().id}`, { method: 'PATCH', json: { employees: n } }), 'patch company');
      } else if (kind <= 16) {
        // hierarchy edits among the hot companies, in both directions at once (422 on a cycle)
        const json = { parentCompanyId: kind === 15 ? hot().id : null };
        await record(await suite.api(`/api/v1/companies/${hot().id}`, { method: 'PATCH', json }), 'patch company parent');
      } else if (kind <= 18) {
        const company = pick(companies)!;
        const headers = { 'if-match': `"${company.version}"` };
        await record(await suite.api(`/api/v1/companies/${company.id}`, { method: 'PATCH', json: { industry: `i${n}` }, headers }), 'patch company if-match');
      } else {
        const contact = pick(contacts);
        if (contact) await record(await suite.api(`/api/v1/contacts/${contact}`, { method: 'PATCH', json: { companyId: hot().id } }), 'patch contact');
      }
    };

    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < TOTAL) await operation(next++);
      }),
    );
    const after = await Promise.all(suite.contactsReplicas.map(callsHandled));

    expect(failures).toEqual([]);
    expect([...statuses.keys()].filter((s) => ![200, 201, 409, 412, 422].includes(s))).toEqual([]);
    expect((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0)).toBeGreaterThan(TOTAL / 2);
    // round robin: each replica handled a fair share
    for (const [i, calls] of after.entries()) expect(calls - before[i]!).toBeGreaterThan(TOTAL / 4);
  }, 120_000);

  it('answers crossing hierarchy edits on two replicas with one 200 and one 422, never a 500 or a cycle', async () => {
    for (let round = 0; round < 10; round++) {
      const a = await create({ name: `Crossing A${round}` });
      const b = await create({ name: `Crossing B${round}` });
      const answers = await Promise.all([
        suite.api(`/api/v1/companies/${a}`, { method: 'PATCH', json: { parentCompanyId: b } }),
        suite.api(`/api/v1/companies/${b}`, { method: 'PATCH', json: { parentCompanyId: a } }),
      ]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 422]);
      expect([await parentOf(a), await parentOf(b)]).toContain(null);
    }
  });

  it('never lets edits racing on two replicas close a hierarchy cycle', async () => {
    for (let round = 0; round < 10; round++) {
      // C ← B (B's parent is C); then "A's parent := B" and "C's parent := A" at once would close A → B → C → A
      const c = await create({ name: `Cycle C${round}` });
      const b = await create({ name: `Cycle B${round}`, parentCompanyId: c });
      const a = await create({ name: `Cycle A${round}` });
      const answers = await Promise.all([
        suite.api(`/api/v1/companies/${a}`, { method: 'PATCH', json: { parentCompanyId: b } }),
        suite.api(`/api/v1/companies/${c}`, { method: 'PATCH', json: { parentCompanyId: a } }),
      ]);
      expect(answers.map((r) => r.status).sort()).toEqual([200, 422]);
      expect(await answers.find((r) => r.status === 422)!.json()).toMatchObject({ code: 'COMPANY_HIERARCHY_CYCLE' });
      expect([await parentOf(a), await parentOf(c)]).toContain(null);
    }
  });

  it('refuses a subsidiary under a parent deleted at the same time on the other replica (422), leaving no live child of a deleted company', async () => {
    for (let round = 0; round < 10; round++) {
      const parent = await create({ name: `Vanishing parent ${round}` });
      const [child, removal] = await Promise.all([
        suite.api('/api/v1/companies', { method: 'POST', json: { name: `Orphan ${round}`, parentCompanyId: parent } }),
        suite.api(`/api/v1/companies/${parent}`, { method: 'DELETE' }),
      ]);
      // whichever commits first wins: the child (and the delete is refused) or the delete (and the child is)
      expect([child.status, removal.status].sort()).toEqual(child.status === 201 ? [201, 422] : [204, 422]);
      if (child.status === 422) expect(await child.json()).toMatchObject({ code: 'PARENT_COMPANY_NOT_FOUND' });
      else expect(await removal.json()).toMatchObject({ code: 'COMPANY_HAS_SUBSIDIARIES' });
    }
  });
});
