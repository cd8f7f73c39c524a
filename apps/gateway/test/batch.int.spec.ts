import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { waitFor } from '@crm/testing';
import { unique } from './support/conformance.ts';
import { mentions, subscribeEvents, type EventLog } from './support/events.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * `POST /api/v1/<plural>:batch` through the real gateway and contacts-svc: each operation is its
 * own transaction with the status, problem and events its single endpoint would give.
 */
let suite: TestSuite;
let events: EventLog;

beforeAll(async () => {
  suite = await startTestSuite();
  events = await subscribeEvents(suite, 'crm.contacts.company.>', 'crm.contacts.contact.>');
});

afterAll(async () => {
  await events?.close();
  await suite?.close();
});

type Json = Record<string, unknown>;
type Rec = Json & { id: string; version: number };
interface Result {
  status: number;
  resource?: Rec;
  problem?: Json & { errors?: { field: string }[] };
}

async function ok<T>(res: Response, status: number): Promise<T> {
  expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
  return (await res.json()) as T;
}

const create = async (path: string, json: Json, as?: string): Promise<Rec> => ok<Rec>(await suite.api(path, { method: 'POST', json, as }), 201);
const batch = (path: string, operations: unknown, as?: string): Promise<Response> => suite.api(`${path}:batch`, { method: 'POST', json: { operations }, as });
const results = async (res: Response): Promise<Result[]> => (await ok<{ results: Result[] }>(res, 200)).results;
const named = async (path: string, name: string): Promise<Rec[]> =>
  (await ok<{ data: Rec[] }>(await suite.api(`${path}?q=${encodeURIComponent(name)}`), 200)).data;

/**
 * Waits until a company created now has its `created` event, so events that should not exist had
 * their chance to arrive (the relay publishes in outbox order, pipelining across aggregates: a
 * best effort for absences; expected events are awaited one by one before counting).
 */
async function drainEvents(): Promise<void> {
  const sentinel = await create('/api/v1/companies', { name: unique('Sentinel') });
  await events.next('crm.contacts.company.created', mentions(sentinel.id));
}

describe('POST /api/v1/companies:batch', () => {
  it('runs a mixed batch item by item: the good ones stored, the bad ones nothing, each with its own status and problem, in request order', async () => {
    const toUpdate = await create('/api/v1/companies', { name: unique('Update me') });
    const toDelete = await create('/api/v1/companies', { name: unique('Delete me') });
    const stale = await create('/api/v1/companies', { name: unique('Stale') });
    const stale2 = await ok<Rec>(await suite.api(`/api/v1/companies/${stale.id}`, { method: 'PATCH', json: { industry: 'mining' } }), 200);
    const taken = `${unique('taken')}.com`;
    await create('/api/v1/companies', { name: unique('Domain owner'), domain: taken });
    const names = {
      a: unique('Alpha'),
      badPhone: unique('Bad phone'),
      dup: unique('Dup'),
      orphan: unique('Orphan'),
      unknown: unique('Unknown'),
      c: unique('Charlie'),
    };
    const missing = randomUUID();

    const res = await batch('/api/v1/companies', [
      { op: 'create', body: { name: names.a, phone: '+1 (415) 555-0100', industry: 'software' } },
      { op: 'create', body: { name: names.badPhone, phone: '(415) 555-0100' } },
      { op: 'create', body: { name: names.dup, domain: taken } },
      { op: 'update', id: toUpdate.id, ifMatch: '"1"', body: { industry: 'retail' } },
      { op: 'update', id: missing, body: { industry: 'retail' } },
      { op: 'update', id: stale.id, ifMatch: '"1"', body: { industry: 'retail' } },
      { op: 'delete', id: toDelete.id, ifMatch: '"1"' },
      { op: 'create', body: { name: names.orphan, parentCompanyId: randomUUID() } },
      { op: 'create', body: { name: names.unknown, isAdmin: true } },
      { op: 'update', id: toUpdate.id, body: {} },
      { op: 'delete', id: stale.id, ifMatch: 'W/"2"' },
      { op: 'create', body: { name: names.c } },
    ]);
    const out = await results(res);
    expect(out.map((r) => r.status)).toEqual([201, 400, 409, 200, 404, 412, 204, 422, 400, 400, 412, 201]);

    // the problems the single endpoints give, each naming its field
    expect(out[1]!.problem).toMatchObject({
      status: 400,
      type: 'urn:crm:problem:validation-error',
      errors: [{ field: 'phone' }],
      instance: '/api/v1/companies',
    });
    expect(out[2]!.problem).toMatchObject({ status: 409, code: 'COMPANY_DOMAIN_TAKEN', errors: [{ field: 'domain' }] });
    expect(out[4]!.problem).toMatchObject({ status: 404, type: 'urn:crm:problem:not-found', instance: `/api/v1/companies/${missing}` });
    expect(out[5]!.problem).toMatchObject({ status: 412, code: 'VERSION_MISMATCH' });
    expect(out[7]!.problem).toMatchObject({ status: 422, code: 'PARENT_COMPANY_NOT_FOUND', errors: [{ field: 'parentCompanyId' }] });
    expect(out[8]!.problem).toMatchObject({ status: 400, errors: [{ field: 'isAdmin', message: 'unknown field' }] });
    expect(out[9]!.problem).toMatchObject({ status: 400, errors: [{ field: 'body' }] });
    expect(out[10]!.problem).toMatchObject({ status: 412 });
    for (const i of [0, 3, 11]) expect(out[i]!.problem).toBeUndefined();
    for (const i of [1, 2, 4, 5, 6, 7, 8, 9, 10]) expect(out[i]!.resource).toBeUndefined();

    // 201 and 200 bodies are what GET returns
    const [a, updated, c] = [out[0]!.resource!, out[3]!.resource!, out[11]!.resource!];
    expect(a).toMatchObject({ name: names.a, phone: '+14155550100', phoneOriginal: '+1 (415) 555-0100', version: 1 });
    expect(updated).toMatchObject({ id: toUpdate.id, industry: 'retail', version: 2 });
    for (const r of [a, updated, c]) expect(await ok(await suite.api(`/api/v1/companies/${r.id}`), 200)).toEqual(r);

    // the failed items stored nothing, the stale ones changed nothing; the delete happened
    for (const name of [names.badPhone, names.dup, names.orphan, names.unknown]) expect(await named('/api/v1/companies', name)).toEqual([]);
    expect(await ok(await suite.api(`/api/v1/companies/${stale.id}`), 200)).toEqual(stale2);
    expect((await suite.api(`/api/v1/companies/${toDelete.id}`)).status).toBe(404);

    // one event per successful item, none for the failed ones
    await events.next('crm.contacts.company.created', mentions(a.id));
    await events.next('crm.contacts.company.created', mentions(c.id));
    await events.next('crm.contacts.company.updated', mentions(toUpdate.id));
    await events.next('crm.contacts.company.deleted', mentions(toDelete.id));
    await drainEvents();
    const company = (kind: string, id: string) => events.all(`crm.contacts.company.${kind}`, mentions(id)).length;
    expect({
      a: company('created', a.id),
      c: company('created', c.id),
      updated: company('updated', toUpdate.id),
      deleted: company('deleted', toDelete.id),
    }).toEqual({
      a: 1,
      c: 1,
      updated: 1,
      deleted: 1,
    });
    expect(company('updated', stale.id)).toBe(1); // the PATCH before the batch, none from it
    expect(company('deleted', stale.id)).toBe(0);
    for (const name of [names.badPhone, names.dup, names.orphan, names.unknown]) expect(events.received.filter(mentions(name))).toEqual([]);
  });

  it('runs up to 200 operations, and refuses the request as a whole (400) for no operations, more than 200, an unknown op or a body that is no envelope', async () => {
    const many = Array.from({ length: 200 }, () => ({ op: 'delete', id: randomUUID() }));
    const out = await results(await batch('/api/v1/companies', many));
    expect(out).toHaveLength(200);
    expect(new Set(out.map((r) => r.status))).toEqual(new Set([404]));

    const refused = async (res: Response, field: string): Promise<void> => {
      expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({
        status: 400,
        type: expect.stringMatching(/^application\/problem\+json/),
      });
      const problem = (await res.json()) as { errors: { field: string }[] };
      expect(problem.errors.map((e) => e.field)).toContain(field);
    };
    const name = unique('Never');
    await refused(await batch('/api/v1/companies', []), 'operations');
    await refused(await batch('/api/v1/companies', [...many, { op: 'create', body: { name } }]), 'operations');
    await refused(
      await batch('/api/v1/companies', [
        { op: 'create', body: { name } },
        { op: 'upsert', body: { name } },
      ]),
      'operations.1.op',
    );
    await refused(await batch('/api/v1/companies', [{ op: 'update', body: { name } }]), 'operations.0.id');
    await refused(await batch('/api/v1/companies', [{ op: 'create', body: { name }, ifMatch: '"1"' }]), 'operations.0.ifMatch');
    await refused(await batch('/api/v1/companies', 'everything'), 'operations');
    await refused(await suite.api('/api/v1/companies:batch', { method: 'POST', json: [{ op: 'create', body: { name } }] }), 'body');
    await refused(
      await suite.api('/api/v1/companies:batch', { method: 'POST', json: { operations: [{ op: 'create', body: { name } }], atomic: true } }),
      'atomic',
    );
    // nothing of a refused request ran
    expect(await named('/api/v1/companies', name)).toEqual([]);
  });

  it('checks roles like the single endpoints: a viewer is refused the whole batch (403), a rep gets 403 per record they do not own', async () => {
    const name = unique('Viewer made');
    const forbidden = await batch('/api/v1/companies', [{ op: 'create', body: { name } }], 'viewer@acme.test');
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ type: 'urn:crm:problem:forbidden' });
    expect(await named('/api/v1/companies', name)).toEqual([]);

    const admins = await create('/api/v1/contacts', { firstName: 'Ada', lastName: unique('Admin owned') });
    const mine = unique('Rep owned');
    const out = await results(
      await batch(
        '/api/v1/contacts',
        [
          { op: 'create', body: { firstName: 'Rae', lastName: mine } },
          { op: 'update', id: admins.id, body: { jobTitle: 'CTO' } },
        ],
        'rep@acme.test',
      ),
    );
    expect(out.map((r) => r.status)).toEqual([201, 403]);
    expect(out[1]!.problem).toMatchObject({ type: 'urn:crm:problem:forbidden', code: 'NOT_ALLOWED' });
    expect(await ok(await suite.api(`/api/v1/contacts/${admins.id}`), 200)).toEqual(admins);
    expect((await named('/api/v1/contacts', mine)).map((r) => r.id)).toEqual([out[0]!.resource!.id]);
  });
});

describe('POST /api/v1/contacts:batch', () => {
  it("gives each contact its service rule's answer (422 naming isPrimary, 400 naming phone) and stores the rest with their events", async () => {
    const company = await create('/api/v1/companies', { name: unique('Employer') });
    const [lonely, national, ok1, ok2] = [unique('Lonely'), unique('National'), unique('Primary'), unique('Second')];
    const out = await results(
      await batch('/api/v1/contacts', [
        { op: 'create', body: { firstName: 'Lone', lastName: lonely, isPrimary: true } },
        { op: 'create', body: { firstName: 'Nat', lastName: national, phone: '0415 555 0100' } },
        { op: 'create', body: { firstName: 'Pri', lastName: ok1, companyId: company.id, isPrimary: true } },
        { op: 'create', body: { firstName: 'Sec', lastName: ok2, companyId: company.id } },
      ]),
    );
    expect(out.map((r) => r.status)).toEqual([422, 400, 201, 201]);
    expect(out[0]!.problem).toMatchObject({ code: 'PRIMARY_CONTACT_NEEDS_COMPANY', errors: [{ field: 'isPrimary' }] });
    expect(out[1]!.problem).toMatchObject({ errors: [{ field: 'phone' }] });
    expect(await named('/api/v1/contacts', lonely)).toEqual([]);
    expect(await named('/api/v1/contacts', national)).toEqual([]);
    for (const r of [out[2]!.resource!, out[3]!.resource!]) expect(await ok(await suite.api(`/api/v1/contacts/${r.id}`), 200)).toEqual(r);

    for (const r of [out[2]!.resource!, out[3]!.resource!]) await events.next('crm.contacts.contact.created', mentions(r.id));
    await events.next('crm.contacts.contact.primary_changed', mentions(out[2]!.resource!.id));
    await drainEvents();
    expect(events.all('crm.contacts.contact.created', mentions(out[2]!.resource!.id))).toHaveLength(1);
    expect(events.all('crm.contacts.contact.created', mentions(out[3]!.resource!.id))).toHaveLength(1);
    expect(events.all('crm.contacts.contact.primary_changed', mentions(out[2]!.resource!.id))).toHaveLength(1);
    expect(events.received.filter((m) => mentions(lonely)(m) || mentions(national)(m))).toEqual([]);
  });
});

describe('load-shedding admission', () => {
  it('admits /companies:batch as a request of the contacts backend (counted in its in-flight slots)', async () => {
    const company = await create('/api/v1/companies', { name: unique('Locked') });
    const locker = new pg.Client({ connectionString: suite.infra.databaseUrl });
    await locker.connect();
    const inFlight = async (): Promise<number> =>
      Number(
        /http_backend_requests\{backend="contacts",state="in_flight",service="gateway"\} (\d+)/.exec(
          await (await fetch(`${suite.gateway.url}/metrics`)).text(),
        )?.[1] ?? -1,
      );
    try {
      expect(await inFlight()).toBe(0);
      // the batch's update waits for this row lock, holding its contacts slot meanwhile
      await locker.query('begin');
      await locker.query('select 1 from contacts.company where id = $1 for update', [company.id]);
      const pending = batch('/api/v1/companies', [{ op: 'update', id: company.id, body: { industry: 'retail' } }]);
      await waitFor('the batch to hold a contacts slot', async () => (await inFlight()) === 1, 5000, 10);
      await locker.query('commit');
      expect((await results(await pending)).map((r) => r.status)).toEqual([200]);
      await waitFor('the slot to be released', async () => (await inFlight()) === 0, 5000, 10);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      await locker.end();
    }
  });
});
