import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { organizationId, waitFor } from '@crm/testing';
import { startTestSuite, type TestSuite, type TestSuiteOptions } from './suite.ts';

type Json = Record<string, unknown>;
/** A REST record: every resource has at least `id` and `version`. */
type Rec = Json & { id: string; version: number };
/** What every `…Updated` event carries besides the record. */
interface UpdatedEvent {
  changedFields: string[];
  changes: { field: string; oldValue?: unknown; newValue?: unknown }[];
}

/** One record resource of the gateway; the conformance battery needs nothing else. */
export interface RecordEntry<E extends UpdatedEvent> {
  /** Collection path, e.g. `/api/v1/companies`. */
  path: string;
  /** A valid create body, unique on every call (see {@link unique}); the API echoes its fields as sent. */
  create: () => Json;
  /** A valid patch body changing fields of a `create()` record; echoed as sent. */
  patch: Json;
  /** Event subject prefix, e.g. `crm.contacts.company` (→ `.created`, `.updated`, `.deleted`). */
  events: string;
  /** ts-proto codec of the `…Updated` event, e.g. `contactsEventsV1.CompanyUpdated`. */
  updated: { decode(data: Uint8Array): E };
  /** The record field inside the updated event, e.g. `company`. */
  record: Exclude<keyof E & string, keyof UpdatedEvent>;
}

let counter = 0;
/** A value no other call returns: `<prefix>-<n>-<random>` (safe in names and email local parts). */
export function unique(prefix: string): string {
  return `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;
}

/**
 * Boots the whole suite (with `options`) once for the enclosing block (the spec file at top level);
 * returns its accessor for {@link describeRecordConformance}.
 */
export function useTestSuite(options: TestSuiteOptions = {}): () => TestSuite {
  let suite: TestSuite | undefined;
  beforeAll(async () => {
    suite = await startTestSuite(options);
  });
  afterAll(async () => {
    await suite?.close();
  });
  return () => {
    if (!suite) throw new Error('the test suite did not boot');
    return suite;
  };
}

const ACME = 'admin@acme.test';
const GLOBEX = 'admin@globex.test';
const VIEWER = 'viewer@acme.test';
const EVENT_DEADLINE_MS = 10_000;

const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
/** A proto value in the REST JSON shape: proto defaults ('' / absent) are null. */
const restShape = (v: unknown): unknown => (v === '' || v === undefined ? null : v);
/** True when `record` carries every field of `body` as sent. */
const echoes = (record: Json, body: Json): boolean => Object.entries(body).every(([k, v]) => isDeepStrictEqual(record[k], v));

/**
 * The REST and event conventions every record resource keeps (docs/ARCHITECTURE.md: REST
 * conventions, tenancy, events), asserted through the gateway over HTTP and on NATS.
 */
export function describeRecordConformance<E extends UpdatedEvent>(suite: () => TestSuite, entry: RecordEntry<E>): void {
  const { path } = entry;
  const fields = Object.keys(entry.patch);

  const call = (p: string, init: Parameters<TestSuite['api']>[1] = {}): Promise<Response> => suite().api(p, init);
  /** The JSON body of `res` after asserting its status (showing the body when it differs). */
  const payload = async <T>(res: Response, status: number): Promise<T> => {
    expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
    return (await res.json()) as T;
  };
  const create = async (json: Json = entry.create(), as = ACME): Promise<Rec> => payload(await call(path, { method: 'POST', json, as }), 201);
  const get = async (id: string): Promise<Rec> => payload(await call(`${path}/${id}`), 200);
  const patch = async (id: string, json: Json = entry.patch): Promise<Rec> => payload(await call(`${path}/${id}`, { method: 'PATCH', json }), 200);
  const listAll = async (as = ACME): Promise<Rec[]> => {
    const all: Rec[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Rec[]; nextCursor: string | null } = await payload(await call(`${path}?limit=200${cursor ? `&cursor=${cursor}` : ''}`, { as }), 200);
      all.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor);
    return all;
  };
  const expectProblem = async (res: Response, status: number, shape: Json = {}): Promise<void> => {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ status, ...shape });
  };
  const expectUnchanged = async (record: Rec): Promise<void> => expect(await get(record.id)).toEqual(record);

  describe(`${path} conformance`, () => {
    let nc: NatsConnection | undefined;
    const received: Msg[] = [];
    beforeAll(async () => {
      nc = await connect({ servers: suite().infra.nats.url, name: `conformance ${entry.events}`, ...suite().infra.natsAuth });
      const sub = nc.subscribe(`${entry.events}.>`);
      void (async () => {
        for await (const m of sub) received.push(m);
      })();
      await nc.flush(); // the subscription is registered before any test writes
    });
    afterAll(async () => {
      await nc?.close();
    });
    /** The first `<prefix>.<kind>` message that `matches`, awaited with a deadline. */
    const event = async (kind: string, matches: (m: Msg) => boolean): Promise<Msg> => {
      const subject = `${entry.events}.${kind}`;
      let found: Msg | undefined;
      await waitFor(`a ${subject} event`, async () => (found = received.find((m) => m.subject === subject && matches(m))) !== undefined, EVENT_DEADLINE_MS, 10);
      return found!;
    };
    const mentions = (id: string) => (m: Msg) => Buffer.from(m.data).includes(id);
    const expectHeaders = (m: Msg, kind: string): void => {
      expect(m.headers?.get('ce-id')).toMatch(/\S/);
      expect(m.headers?.get('ce-type')).toBe(`${entry.events}.${kind}`);
      expect(m.headers?.get('organization-id')).toBe(organizationId('acme'));
    };

    it('creates (201, Location, ETag "1"), reads, lists, patches (ETag "2") and deletes (204, then 404)', async () => {
      const json = entry.create();
      const res = await call(path, { method: 'POST', json });
      const created = await payload<Rec>(res, 201);
      expect(created).toMatchObject({ ...json, version: 1 });
      expect(res.headers.get('location')).toBe(`${path}/${created.id}`);
      expect(res.headers.get('etag')).toBe('"1"');

      const read = await call(`${path}/${created.id}`);
      expect(await payload(read, 200)).toEqual(created);
      expect(read.headers.get('etag')).toBe('"1"');
      expect((await listAll()).map((r) => r.id)).toContain(created.id);

      const patched = await call(`${path}/${created.id}`, { method: 'PATCH', json: entry.patch, headers: { 'if-match': '"1"' } });
      expect(await payload(patched, 200)).toMatchObject({ ...json, ...entry.patch, id: created.id, version: 2 });
      expect(patched.headers.get('etag')).toBe('"2"');
      expect(await get(created.id)).toMatchObject({ ...entry.patch, version: 2 });

      expect((await call(`${path}/${created.id}`, { method: 'DELETE', headers: { 'if-match': '"2"' } })).status).toBe(204);
      await expectProblem(await call(`${path}/${created.id}`), 404);
      expect((await listAll()).map((r) => r.id)).not.toContain(created.id);
    });

    it('pages with limit=1 visiting each record once in order; ends with an empty page; refuses a malformed cursor', async () => {
      const mine = [await create(), await create(), await create()];
      const tail = await create();
      const visited: { id: string; nextCursor: string | null }[] = [];
      let cursor: string | null = null;
      do {
        const page: { data: Rec[]; nextCursor: string | null } = await payload(await call(`${path}?limit=1${cursor ? `&cursor=${cursor}` : ''}`), 200);
        expect(page.data.length).toBe(1);
        visited.push({ id: page.data[0]!.id, nextCursor: page.nextCursor });
        cursor = page.nextCursor;
      } while (cursor && visited.length <= 10_000);
      const ids = visited.map((v) => v.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.filter((id) => [...mine, tail].some((r) => r.id === id))).toEqual([...mine, tail].map((r) => r.id));
      expect(visited.at(-1)).toEqual({ id: tail.id, nextCursor: null });

      // the cursor after the last of `mine` points at `tail`; once `tail` is gone nothing follows it
      const afterMine = visited.find((v) => v.id === mine[2]!.id)!.nextCursor;
      expect(afterMine).not.toBeNull();
      expect((await call(`${path}/${tail.id}`, { method: 'DELETE' })).status).toBe(204);
      expect(await payload(await call(`${path}?limit=1&cursor=${afterMine}`), 200)).toEqual({ data: [], nextCursor: null });

      await expectProblem(await call(`${path}?limit=1&cursor=not-a-cursor!`), 400, { errors: [{ field: 'cursor' }] });
    });

    it("answers 404 to another tenant's GET, PATCH and DELETE, changes nothing, and never lists the record there", async () => {
      const record = await create();
      await expectProblem(await call(`${path}/${record.id}`, { as: GLOBEX }), 404);
      await expectProblem(await call(`${path}/${record.id}`, { method: 'PATCH', json: entry.patch, as: GLOBEX }), 404);
      await expectProblem(await call(`${path}/${record.id}`, { method: 'DELETE', as: GLOBEX }), 404);
      await expectUnchanged(record);
      expect((await listAll(GLOBEX)).map((r) => r.id)).not.toContain(record.id);
    });

    it('lets a viewer read (200) but not create, patch or delete (403)', async () => {
      const record = await create();
      const json = entry.create();
      const forbidden = { type: 'urn:crm:problem:forbidden' };
      await expectProblem(await call(path, { method: 'POST', json, as: VIEWER }), 403, forbidden);
      await expectProblem(await call(`${path}/${record.id}`, { method: 'PATCH', json: entry.patch, as: VIEWER }), 403, forbidden);
      await expectProblem(await call(`${path}/${record.id}`, { method: 'DELETE', as: VIEWER }), 403, forbidden);
      expect((await call(`${path}/${record.id}`, { as: VIEWER })).status).toBe(200);
      const list = await listAll(VIEWER);
      expect(list.map((r) => r.id)).toContain(record.id);
      expect(list.filter((r) => echoes(r, json))).toEqual([]);
      await expectUnchanged(record);
    });

    it('rejects an unknown body field on POST and PATCH with 400 naming it, and stores nothing', async () => {
      const unknown = { errors: [{ field: 'isAdmin', message: 'unknown field' }], type: 'urn:crm:problem:validation-error' };
      const json = entry.create();
      const before = (await listAll()).length;
      await expectProblem(await call(path, { method: 'POST', json: { ...json, isAdmin: true } }), 400, unknown);
      const after = await listAll();
      expect(after.filter((r) => echoes(r, json))).toEqual([]);
      expect(after.length).toBe(before);

      const record = await create();
      await expectProblem(await call(`${path}/${record.id}`, { method: 'PATCH', json: { ...entry.patch, isAdmin: true } }), 400, unknown);
      await expectUnchanged(record);
    });

    it('answers 412 to a stale If-Match on PATCH and DELETE and keeps the newer data', async () => {
      const record = await create();
      const newer = await patch(record.id);
      const stale = { 'if-match': '"1"' };
      await expectProblem(await call(`${path}/${record.id}`, { method: 'PATCH', json: entry.patch, headers: stale }), 412);
      await expectProblem(await call(`${path}/${record.id}`, { method: 'DELETE', headers: stale }), 412);
      await expectUnchanged(newer);
    });

    it('replays the response to a repeated Idempotency-Key with the same body and stores one record', async () => {
      const json = entry.create();
      const headers = { 'idempotency-key': unique('conformance') };
      const first = await call(path, { method: 'POST', json, headers });
      const second = await call(path, { method: 'POST', json, headers });
      expect([first.status, second.status]).toEqual([201, 201]);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
      expect(second.headers.get('location')).toBe(first.headers.get('location'));
      expect(second.headers.get('etag')).toBe(first.headers.get('etag'));
      expect(await second.json()).toEqual(await first.json());
      expect((await listAll()).filter((r) => echoes(r, json))).toHaveLength(1);
    });

    it(`publishes ${entry.events}.created and .deleted with CloudEvents headers and the tenant`, async () => {
      const record = await create();
      expectHeaders(await event('created', mentions(record.id)), 'created');
      expect((await call(`${path}/${record.id}`, { method: 'DELETE' })).status).toBe(204);
      expectHeaders(await event('deleted', mentions(record.id)), 'deleted');
    });

    it(`publishes ${entry.events}.updated with the new record, changedFields and the old and new values in changes`, async () => {
      const before = await create();
      const after = await patch(before.id);
      const decode = (m: Msg): E => entry.updated.decode(m.data);
      const recordOf = (e: E): Json => (e[entry.record] ?? {}) as Json;
      const msg = await event('updated', (m) => recordOf(decode(m))['id'] === before.id);
      expectHeaders(msg, 'updated');
      const updated = decode(msg);
      const sent = Object.fromEntries(fields.map((f) => [f, restShape(recordOf(updated)[f])]));
      expect(sent).toEqual(Object.fromEntries(fields.map((f) => [f, after[f]])));
      expect([...updated.changedFields].sort()).toEqual(fields.map(snake).sort());
      const changes = updated.changes.map((c) => ({ field: c.field, oldValue: c.oldValue ?? null, newValue: c.newValue ?? null }));
      const expected = fields.map((f) => ({ field: snake(f), oldValue: before[f] ?? null, newValue: after[f] ?? null }));
      const byField = (a: { field: string }, b: { field: string }): number => a.field.localeCompare(b.field);
      expect(changes.sort(byField)).toEqual(expected.sort(byField));
    });
  });
}
