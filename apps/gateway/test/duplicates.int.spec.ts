import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { drainDuplicateScan } from '@crm/contacts-svc';
import { encodeCursor } from '@crm/platform';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Duplicate detection through the gateway: each matching rule (e-mail, phone, domain, fuzzy name
 * within a company or city) with its explained score, the 409 on create and `allowDuplicate`, the
 * organization's threshold, the pairs lists (background scan, keyset paging, route order) and
 * tenancy: another organization's near-identical record is never a candidate.
 */
let suite: TestSuite;

beforeAll(async () => {
  // lists are paged through whole: more requests than a person makes
  suite = await startTestSuite({ gateway: { RATE_LIMIT_PER_MINUTE: '100000' } });
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
interface Candidate {
  id: string;
  score: number;
  reasons: { rule: string; weight: number }[];
}
interface PairPage {
  data: { score: number; reasons: { rule: string; weight: number }[]; records: Rec[] }[];
  nextCursor: string | null;
  minScore: number;
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

const post = (path: string, json: Json, as = ADMIN) => suite.api(path, { method: 'POST', json, as });
const create = async (path: string, json: Json, as = ADMIN): Promise<Rec> => ok<Rec>(await post(path, json, as), 201);
const company = (json: Json = {}, as = ADMIN) => create('/api/v1/companies', { name: unique('Dup Co'), ...json }, as);
const contact = (json: Json, as = ADMIN) => create('/api/v1/contacts', json, as);

let phoneCounter = Math.floor(Math.random() * 1_000_000);
/** A phone number no other test uses: `+1 212 <7 digits>` (stored as `+1212…`). */
const phone = () => `+1 212 ${String(++phoneCounter % 10_000_000).padStart(7, '0')}`;
const e164 = (typed: string) => typed.replaceAll(' ', '');
/** A word no other test uses, safe in names, e-mail local parts and domains. */
const token = () => unique('t').replaceAll('-', '').toLowerCase();

const pairs = async (plural: string, query = '', as = ADMIN): Promise<PairPage> =>
  ok<PairPage>(await suite.api(`/api/v1/${plural}/duplicates${query}`, { as }));
const pairOf = (page: Pick<PairPage, 'data'>, a: string, b: string) =>
  page.data.find(
    (p) =>
      p.records
        .map((r) => r.id)
        .sort()
        .join() === [a, b].sort().join(),
  );
/**
 * Every pair of the list at `query` (all pages), once the scan has rescanned everything queued so
 * far (`drainDuplicateScan`: deterministic, no polling) — the database is shared by all tests, so
 * a check that a pair is absent must see the whole list, not its first page.
 */
async function allPairs(plural: string, query = '?minScore=1', as = ADMIN): Promise<PairPage['data']> {
  await drainDuplicateScan(suite.contacts.orm);
  const out: PairPage['data'] = [];
  let cursor: string | null = '';
  while (cursor !== null) {
    const page: PairPage = await pairs(plural, `${query}${query ? '&' : '?'}limit=200${cursor ? `&cursor=${cursor}` : ''}`, as);
    out.push(...page.data);
    cursor = page.nextCursor;
  }
  return out;
}
/** The pair of `a` and `b` in the list at `query` after the scan (undefined when not listed). */
const findPair = async (plural: string, a: string, b: string, query = '?minScore=1', as = ADMIN) => pairOf({ data: await allPairs(plural, query, as) }, a, b);
/** The pair of `a` and `b` in the list at `query` after the scan; fails when it is not listed. */
async function listedPair(plural: string, a: string, b: string, query = '?minScore=1', as = ADMIN) {
  const found = await findPair(plural, a, b, query, as);
  expect({ pair: `${a} / ${b}`, listed: found !== undefined }).toEqual({ pair: `${a} / ${b}`, listed: true });
  return found!;
}

describe('contacts: rules, scores and the 409 on create', () => {
  it('matches a Gmail address without dots and +tag and the same name in the same company: 409 with the candidate, its score and reasons', async () => {
    const t = token();
    const co = await company();
    const ada = await contact({ firstName: 'Ada', lastName: `Lovelace${t}`, email: `ada.lovelace.${t}@gmail.com`, companyId: co.id });
    const res = await post('/api/v1/contacts', { firstName: 'ada', lastName: `LOVELACE${t}`, email: `AdaLovelace${t}+crm@googlemail.com`, companyId: co.id });
    const problem = await problemOf(res, 409);
    expect(problem).toMatchObject({ code: 'DUPLICATE_CANDIDATES', threshold: 80, type: 'urn:crm:problem:conflict' });
    expect(problem['candidates']).toEqual([
      {
        id: ada.id,
        score: 100,
        reasons: [
          { rule: 'email', weight: 80 },
          { rule: 'name', weight: 50 },
        ],
      },
    ]);
    // nothing was created
    const list = await ok<{ data: Rec[] }>(await suite.api(`/api/v1/contacts?companyId=${co.id}`));
    expect(list.data.map((r) => r.id)).toEqual([ada.id]);
  });

  it('creates the duplicate anyway with allowDuplicate=true, and the scan lists the pair with its reasons', async () => {
    const t = token();
    const ada = await contact({ firstName: 'Ada', lastName: `Byron${t}`, email: `ada.${t}@outlook.com` });
    const blocked = await problemOf(await post('/api/v1/contacts', { firstName: 'Augusta', lastName: `King${t}`, email: `ada.${t}+news@outlook.com` }), 409);
    expect(blocked['candidates']).toEqual([{ id: ada.id, score: 80, reasons: [{ rule: 'email', weight: 80 }] }]);
    const twin = await ok<Rec>(
      await post('/api/v1/contacts?allowDuplicate=true', { firstName: 'Augusta', lastName: `King${t}`, email: `ada.${t}+news@outlook.com` }),
      201,
    );
    expect(twin).toMatchObject({ email: `ada.${t}+news@outlook.com`, mergedIntoId: null });
    const pair = await listedPair('contacts', ada.id, twin.id, '');
    expect(pair).toMatchObject({ score: 80, reasons: [{ rule: 'email', weight: 80 }] });
    expect(pair.records.map((r) => r.id)).toEqual([ada.id, twin.id].sort());
    expect(pair.records.find((r) => r.id === twin.id)).toEqual(await ok<Rec>(await suite.api(`/api/v1/contacts/${twin.id}`)));
  });

  it('matches a phone against a mobile (E.164) plus a fuzzy name within the company: 82', async () => {
    const t = token();
    const co = await company();
    const number = phone();
    const jon = await contact({ firstName: 'Jonathan', lastName: `Montgomery-Smith ${t}`, phone: number, companyId: co.id });
    const draft = { firstName: 'Jonathon', lastName: `Montgomery-Smith ${t}`, mobile: number.replaceAll(' ', '-'), companyId: co.id };
    const problem = await problemOf(await post('/api/v1/contacts', draft), 409);
    // similarity("jonathan montgomery-smith …", "jonathon montgomery-smith …") ≈ 0.85 → round(50 × 0.85) = 42
    expect(problem['candidates']).toEqual([
      {
        id: jon.id,
        score: 82,
        reasons: [
          { rule: 'name', weight: 42 },
          { rule: 'phone', weight: 40 },
        ],
      },
    ]);
    // in another company the name is no evidence: the phone alone (40) does not block
    const other = await company();
    expect(await contact({ ...draft, companyId: other.id })).toMatchObject({ mobile: e164(number) });
  });

  it('does not block what scores below the threshold: the same name alone (50), a name in another company, a shared corporate e-mail domain', async () => {
    const t = token();
    const [acme, initech] = [await company(), await company()];
    const first = await contact({ firstName: 'Grace', lastName: `Hopper${t}`, email: `grace@${t}.example.com`, companyId: acme.id });
    const sameName = await contact({ firstName: 'Grace', lastName: `Hopper${t}`, companyId: acme.id });
    const elsewhere = await contact({ firstName: 'Grace', lastName: `Hopper${t}`, companyId: initech.id });
    const colleague = await contact({ firstName: 'Alan', lastName: `Turing${t}`, email: `alan@${t}.example.com`, companyId: initech.id });
    // a +tag on a domain that may not sub-address is another mailbox
    const plus = await contact({ firstName: 'Kurt', lastName: `Goedel${t}`, email: `grace+x@${t}.example.com` });
    const found = await ok<{ minScore: number; candidates: Candidate[] }>(
      await post('/api/v1/contacts:findDuplicates?minScore=1', { firstName: 'Grace', lastName: `Hopper${t}`, companyId: acme.id }),
    );
    expect(found.minScore).toBe(1);
    expect(found.candidates).toEqual(
      [
        { id: first.id, score: 50, reasons: [{ rule: 'name', weight: 50 }] },
        { id: sameName.id, score: 50, reasons: [{ rule: 'name', weight: 50 }] },
      ].sort((a, b) => (a.id < b.id ? -1 : 1)),
    );
    const byEmail = await ok<{ candidates: Candidate[] }>(await post('/api/v1/contacts:findDuplicates?minScore=1', { email: `grace@${t}.example.com` }));
    expect(byEmail.candidates.map((c) => c.id)).toEqual([first.id]);
    expect([elsewhere.id, colleague.id, plus.id]).not.toContain(byEmail.candidates[0]?.id);
    // listed at a lower threshold only
    const pair = await listedPair('contacts', first.id, sameName.id);
    expect(pair.score).toBe(50);
    expect(await findPair('contacts', first.id, sameName.id, '')).toBeUndefined();
  });

  it('leaves a taken unique value to its own conflict: the same e-mail is 409 CONTACT_EMAIL_TAKEN, allowed duplicate or not', async () => {
    const t = token();
    await contact({ firstName: 'Emmy', lastName: `Noether${t}`, email: `emmy.${t}@example.com` });
    for (const query of ['', '?allowDuplicate=true']) {
      const problem = await problemOf(
        await post(`/api/v1/contacts${query}`, { firstName: 'Emmy', lastName: `Noether${t}`, email: `Emmy.${t}@example.com` }),
        409,
      );
      expect(problem).toMatchObject({ code: 'CONTACT_EMAIL_TAKEN', errors: [{ field: 'email' }] });
    }
  });

  it('refuses likely duplicates in batch creates too, naming the matching fields', async () => {
    const t = token();
    const ada = await contact({ firstName: 'Ada', lastName: `Batch${t}`, email: `ada.${t}@gmail.com` });
    const res = await ok<{ results: { status: number; problem?: Json }[] }>(
      await post('/api/v1/contacts:batch', { operations: [{ op: 'create', body: { firstName: 'A', lastName: `Other${t}`, email: `a.d.a.${t}@gmail.com` } }] }),
    );
    expect(res.results[0]).toMatchObject({
      status: 409,
      problem: { code: 'DUPLICATE_CANDIDATES', errors: [{ field: 'email', message: expect.stringContaining(ada.id) }] },
    });
  });
});

describe('companies: domain, e-mail, phone and fuzzy name within the city', () => {
  it('matches a website against a domain (scheme, www. and path ignored): 409', async () => {
    const t = token();
    const acme = await company({ name: `Acme ${t}`, domain: `acme-${t}.com` });
    const problem = await problemOf(await post('/api/v1/companies', { name: `Totally Different ${t}`, website: `https://www.ACME-${t}.com/about?x=1` }), 409);
    expect(problem['candidates']).toEqual([{ id: acme.id, score: 80, reasons: [{ rule: 'domain', weight: 80 }] }]);
  });

  it('matches names without legal forms in the same city, plus the phone: 90; another city does not count', async () => {
    const t = token();
    const number = phone();
    const initech = await company({ name: `Initech ${t} GmbH`, phone: number, address: { city: 'Berlin', country: 'DE' } });
    const problem = await problemOf(
      await post('/api/v1/companies', { name: `INITECH ${t}, Inc.`, phone: number, address: { city: 'berlin', country: 'DE' } }),
      409,
    );
    expect(problem['candidates']).toEqual([
      {
        id: initech.id,
        score: 90,
        reasons: [
          { rule: 'name', weight: 50 },
          { rule: 'phone', weight: 40 },
        ],
      },
    ]);
    // in Munich the name is no evidence: the phone alone (40) does not block, and is below the
    // floor of stored pairs (50): found on demand, never listed
    const munich = await company({ name: `Initech ${t} AG`, phone: number, address: { city: 'Munich' } });
    const found = await ok<{ candidates: Candidate[] }>(
      await post('/api/v1/companies:findDuplicates?minScore=1', { name: `Initech ${t} AG`, phone: number, address: { city: 'Munich' } }),
    );
    expect(found.candidates).toContainEqual({ id: initech.id, score: 40, reasons: [{ rule: 'phone', weight: 40 }] });
    expect(await findPair('companies', initech.id, munich.id)).toBeUndefined();
  });

  it('matches the company e-mail (60) and lists the pair', async () => {
    const t = token();
    const a = await company({ email: `info@${t}.example.com` });
    const b = await company({ email: ` INFO@${t}.example.com` });
    expect(await listedPair('companies', a.id, b.id)).toMatchObject({ score: 60, reasons: [{ rule: 'email', weight: 60 }] });
  });
});

describe('the organization’s threshold', () => {
  it('is 80 until an admin sets it; only admins set it, to a whole number 1..100; creates and lists follow it', async () => {
    expect(await ok<Json>(await suite.api('/api/v1/duplicate-settings', { as: 'viewer@acme.test' }))).toEqual({
      threshold: 80,
      updatedAt: null,
      updatedBy: null,
    });
    const put = (threshold: unknown, as = ADMIN) => suite.api('/api/v1/duplicate-settings', { method: 'PUT', json: { threshold }, as });
    expect((await problemOf(await put(90, 'manager@acme.test'), 403))['status']).toBe(403);
    for (const bad of [0, 101, 79.5, '80']) expect(await problemOf(await put(bad), 400)).toMatchObject({ errors: [{ field: 'threshold' }] });
    const t = token();
    const first = await contact({ firstName: 'Mary', lastName: `Somerville${t}`, email: `mary.${t}@gmail.com` });
    try {
      expect(await ok<Json>(await put(81))).toMatchObject({ threshold: 81, updatedAt: expect.any(String), updatedBy: expect.any(String) });
      // an e-mail match alone (80) no longer blocks, and is no longer listed by default
      const second = await contact({ firstName: 'M', lastName: `Fairfax${t}`, email: `m.a.r.y.${t}+maths@gmail.com` });
      const pair = await listedPair('contacts', first.id, second.id);
      expect(pair.score).toBe(80);
      expect(await findPair('contacts', first.id, second.id, '')).toBeUndefined();
      expect((await pairs('contacts', '?limit=1')).minScore).toBe(81);
      // another organization keeps its own
      expect(await ok<Json>(await suite.api('/api/v1/duplicate-settings', { as: GLOBEX }))).toMatchObject({ threshold: 80 });
    } finally {
      await ok(await put(80));
    }
  });
});

describe('pairs lists', () => {
  it('are keyset-paged, highest score first, and not taken by GET /{plural}/{id}', async () => {
    const t = token();
    const co = await company();
    const number = phone();
    // three pairs: 100 (e-mail + name), 90 (phone + name), 50 (name)
    const a = await contact({ firstName: 'Page', lastName: `One${t}`, email: `page.${t}@gmail.com`, companyId: co.id });
    const b = await ok<Rec>(
      await post('/api/v1/contacts?allowDuplicate=true', {
        firstName: 'Page',
        lastName: `One${t}`,
        email: `pa.ge.${t}@gmail.com`,
        phone: number,
        companyId: co.id,
      }),
      201,
    );
    const c = await ok<Rec>(
      await post('/api/v1/contacts?allowDuplicate=true', { firstName: 'Page', lastName: `One${t}`, mobile: number, companyId: co.id }),
      201,
    );
    await listedPair('contacts', a.id, b.id);
    await listedPair('contacts', b.id, c.id);
    await listedPair('contacts', a.id, c.id);
    const seen: PairPage['data'] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = await pairs('contacts', `?minScore=1&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.data.length).toBeLessThanOrEqual(1);
      seen.push(...page.data);
      cursor = page.nextCursor;
    }
    const scores = seen.map((p) => p.score);
    expect(scores).toEqual([...scores].sort((x, y) => y - x));
    const mine = seen.filter((p) => p.records.every((r) => [a.id, b.id, c.id].includes(r.id)));
    expect(mine.map((p) => p.score)).toEqual([100, 90, 50]);
    expect(new Set(seen.map((p) => p.records.map((r) => r.id).join())).size).toBe(seen.length);
    expect(await problemOf(await suite.api('/api/v1/contacts/duplicates?cursor=bogus'), 400)).toMatchObject({ code: 'INVALID_CURSOR' });
    // tampered cursors: a score Postgres cannot hold, out of range, not a whole number, ids that are no UUIDs — 400, never 500
    for (const s of ['10000000000', '1e21', '-1', '101', '50.5', '1e2', ' 50', '']) {
      const cursor = encodeCursor({ s, r: a.id, d: b.id });
      expect(await problemOf(await suite.api(`/api/v1/contacts/duplicates?minScore=1&cursor=${cursor}`), 400)).toMatchObject({
        code: 'INVALID_CURSOR',
        errors: [{ field: 'cursor' }],
      });
    }
    for (const [r, d] of [
      ['x', b.id],
      [a.id, `${b.id}'`],
    ] as const) {
      const cursor = encodeCursor({ s: '90', r, d });
      expect(await problemOf(await suite.api(`/api/v1/contacts/duplicates?minScore=1&cursor=${cursor}`), 400)).toMatchObject({ code: 'INVALID_CURSOR' });
    }
    // a well-formed one continues after its pair
    const after = await pairs(
      'contacts',
      `?minScore=1&limit=200&cursor=${encodeCursor({ s: '100', r: a.id < b.id ? a.id : b.id, d: a.id < b.id ? b.id : a.id })}`,
    );
    expect(after.data.every((p) => p.score <= 100)).toBe(true);
    expect(await problemOf(await suite.api('/api/v1/contacts/duplicates?minScore=0'), 400)).toMatchObject({ errors: [{ field: 'minScore' }] });
  });

  it('drop a pair once a record is deleted', async () => {
    const t = token();
    const a = await contact({ firstName: 'Del', lastName: `Pair${t}`, email: `del.${t}@gmail.com` });
    const b = await ok<Rec>(await post('/api/v1/contacts?allowDuplicate=true', { firstName: 'Del', lastName: `Pair${t}`, email: `d.el.${t}@gmail.com` }), 201);
    await listedPair('contacts', a.id, b.id);
    expect((await suite.api(`/api/v1/contacts/${b.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await findPair('contacts', a.id, b.id)).toBeUndefined();
  });
});

describe('tenancy', () => {
  it('never offers another organization’s near-identical record, in checks, creates or lists', async () => {
    const t = token();
    const number = phone();
    const theirs = await contact({ firstName: 'Hedy', lastName: `Lamarr${t}`, email: `hedy.${t}@gmail.com`, phone: number }, GLOBEX);
    // the same person in acme: no candidate, so created without allowDuplicate
    const ours = await contact({ firstName: 'Hedy', lastName: `Lamarr${t}`, email: `h.e.d.y.${t}@gmail.com`, phone: number });
    const found = await ok<{ candidates: Candidate[] }>(
      await post('/api/v1/contacts:findDuplicates?minScore=1', { firstName: 'Hedy', lastName: `Lamarr${t}`, email: `hedy.${t}@gmail.com`, phone: number }),
    );
    expect(found.candidates.map((c) => c.id)).toEqual([ours.id]);
    const twin = await ok<Rec>(
      await post('/api/v1/contacts?allowDuplicate=true', { firstName: 'Hedy', lastName: `Lamarr${t}`, email: `he.dy.${t}@gmail.com` }, GLOBEX),
      201,
    );
    await listedPair('contacts', theirs.id, twin.id, '?minScore=1', GLOBEX);
    const acmeIds = (await allPairs('contacts')).flatMap((p) => p.records.map((r) => r.id));
    expect(acmeIds).not.toContain(theirs.id);
    expect(acmeIds).not.toContain(twin.id);
    const globexIds = (await allPairs('contacts', '?minScore=1', GLOBEX)).flatMap((p) => p.records.map((r) => r.id));
    expect(globexIds).not.toContain(ours.id);
  });
});
