import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { unique } from './support/conformance.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * Lists of companies and contacts through the gateway (issue 7 "Search, filters, sorting"): sorts
 * keyset-paged on the sort key + id, tag / custom-field / time / address filters, and their
 * refusals. Every company here carries the run's marker industry so other tests' rows never mix in.
 */
let suite: TestSuite;
const industry = unique('lists');

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

type Json = Record<string, unknown>;
interface Company {
  id: string;
  name: string;
  tags: string[];
  createdAt: string;
  lastContactedAt: string | null;
  version: number;
}

async function created<T>(res: Response): Promise<T> {
  expect({ status: res.status, body: res.status === 201 ? 'ok' : await res.text() }).toEqual({ status: 201, body: 'ok' });
  return (await res.json()) as T;
}

const company = (json: Json): Promise<Company> => suite.api('/api/v1/companies', { method: 'POST', json: { industry, ...json } }).then(created<Company>);

/** Every page of `query` (with the run's industry) followed by its cursors, with the page sizes seen. */
async function all(query: string, limit = 2): Promise<{ items: Company[]; pages: number }> {
  const items: Company[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await suite.api(`/api/v1/companies?industry=${industry}&limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`);
    expect({ status: res.status, body: res.status === 200 ? 'ok' : await res.text() }).toEqual({ status: 200, body: 'ok' });
    const page = (await res.json()) as { data: Company[]; nextCursor: string | null };
    items.push(...page.data);
    cursor = page.nextCursor;
    pages += 1;
    if (pages > 50) throw new Error('paging does not end');
  } while (cursor);
  return { items, pages };
}

async function problemOf(res: Response, status: number): Promise<Json> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Json;
}

describe('company lists', () => {
  let companies: Company[];
  let vip: string;
  let eu: string;

  beforeAll(async () => {
    vip = ((await suite.api('/api/v1/tags', { method: 'POST', json: { name: unique('VIP') } }).then(created<Json>)) as { id: string }).id;
    eu = ((await suite.api('/api/v1/tags', { method: 'POST', json: { name: unique('EU') } }).then(created<Json>)) as { id: string }).id;
    await suite.api('/api/v1/custom-fields', {
      method: 'POST',
      json: { object: 'company', key: 'tier', label: 'Tier', type: 'select', options: ['gold', 'silver'] },
    });
    // names with ties (two "Beta"), unset and set last-contacted times, tags and custom fields
    companies = [];
    for (const [name, lastContactedAt, tags, tier, city] of [
      ['Gamma', '2026-03-01T00:00:00.000Z', [vip], 'gold', 'Berlin'],
      ['Alpha', null, [vip, eu], 'silver', 'berlin'],
      ['Beta', '2026-01-01T00:00:00.000Z', [eu], null, 'Paris'],
      ['Beta', null, [], 'gold', null],
      ['Delta', '2026-02-01T00:00:00.000Z', [vip, eu], null, 'Lyon'],
    ] as const) {
      companies.push(
        await company({
          name,
          lastContactedAt,
          tags,
          ...(tier ? { customFields: { tier } } : {}),
          ...(city ? { address: { street: null, city, region: null, postalCode: null, country: city === 'Paris' || city === 'Lyon' ? 'FR' : 'DE' } } : {}),
        }),
      );
    }
  });

  const names = (items: Company[]) => items.map((c) => c.name);
  const ids = (items: Company[]) => items.map((c) => c.id);

  it('pages through a sort with ties on the sort key + id: every record once, in order, both directions', async () => {
    const byName = await all('&sort=name');
    expect(names(byName.items)).toEqual(['Alpha', 'Beta', 'Beta', 'Delta', 'Gamma']);
    expect(byName.pages).toBe(3);
    const betas = companies
      .filter((c) => c.name === 'Beta')
      .map((c) => c.id)
      .sort();
    expect(ids(byName.items.filter((c) => c.name === 'Beta'))).toEqual(betas);
    const desc = await all('&sort=-name');
    expect(ids(desc.items)).toEqual(ids(byName.items).reverse());
  });

  it('sorts by last contact with never-contacted records first ascending and last descending', async () => {
    const asc = await all('&sort=lastContactedAt', 1);
    expect(asc.items.map((c) => c.lastContactedAt)).toEqual([null, null, '2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
    const desc = await all('&sort=-lastContactedAt', 3);
    expect(ids(desc.items)).toEqual(ids(asc.items).reverse());
    expect(names((await all('&sort=createdAt')).items)).toEqual(['Gamma', 'Alpha', 'Beta', 'Beta', 'Delta']);
  });

  it('filters by tags (any, all), custom fields, time ranges and head-office city and country', async () => {
    expect(names((await all(`&tags=${vip}&sort=name`)).items)).toEqual(['Alpha', 'Delta', 'Gamma']);
    expect(names((await all(`&tags=${vip},${eu}&tagsMatch=all&sort=name`)).items)).toEqual(['Alpha', 'Delta']);
    expect(names((await all(`&tags=${vip},${eu}&sort=name`)).items)).toEqual(['Alpha', 'Beta', 'Delta', 'Gamma']);
    expect(names((await all('&cf.tier=gold&sort=name')).items)).toEqual(['Beta', 'Gamma']);
    expect(names((await all('&lastContactedAfter=2026-01-15T00:00:00Z&lastContactedBefore=2026-03-01T00:00:00Z')).items)).toEqual(['Delta']);
    expect(names((await all('&addressCity=BERLIN&sort=name')).items)).toEqual(['Alpha', 'Gamma']);
    expect(names((await all('&addressCountry=FR&sort=name')).items)).toEqual(['Beta', 'Delta']);
    const soon = new Date(Date.now() + 3_600_000).toISOString();
    expect((await all(`&createdAfter=${encodeURIComponent(soon)}`)).items).toEqual([]);
  });

  it('refuses an unknown sort, a cursor of another sort, an unknown parameter or custom field, and a bad option, naming each', async () => {
    expect(await problemOf(await suite.api('/api/v1/companies?sort=revenue'), 400)).toMatchObject({ errors: [{ field: 'sort' }] });
    const page = (await (await suite.api(`/api/v1/companies?industry=${industry}&limit=1&sort=name`)).json()) as { nextCursor: string };
    expect(await problemOf(await suite.api(`/api/v1/companies?industry=${industry}&limit=1&sort=createdAt&cursor=${page.nextCursor}`), 400)).toMatchObject({
      errors: [{ field: 'cursor' }],
    });
    expect(await problemOf(await suite.api('/api/v1/companies?colour=red'), 400)).toMatchObject({ errors: [{ field: 'colour' }] });
    expect(await problemOf(await suite.api('/api/v1/companies?cf.nope=1'), 400)).toMatchObject({ errors: [{ field: 'cf.nope' }] });
    expect(await problemOf(await suite.api('/api/v1/companies?cf.tier=bronze'), 400)).toMatchObject({ errors: [{ field: 'cf.tier' }] });
  });

  it('never shows another organization’s records, whatever the filter', async () => {
    const other = await suite.api(`/api/v1/companies?industry=${industry}&tags=${vip}&sort=name`, { as: 'admin@globex.test' });
    expect(((await other.json()) as { data: unknown[] }).data).toEqual([]);
  });
});

describe('contact lists', () => {
  it('sort by name on last then first name, and search accent-insensitively', async () => {
    const last = unique('Müller');
    for (const firstName of ['Zoë', 'Anna', 'Bert']) {
      await suite.api('/api/v1/contacts', { method: 'POST', json: { firstName, lastName: last } }).then(created<Json>);
    }
    const folded = last
      .normalize('NFD')
      .replace(/\p{Diacritic}/gu, '')
      .toLowerCase();
    const res = await suite.api(`/api/v1/contacts?q=${encodeURIComponent(folded)}&sort=name`);
    expect(((await res.json()) as { data: { firstName: string }[] }).data.map((c) => c.firstName)).toEqual(['Anna', 'Bert', 'Zoë']);
  });
});

describe('hostile input inside free-form JSON and cursors', () => {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  it('refuses NUL inside free-form JSON (social profiles, custom fields) with 400 naming the field, never 500', async () => {
    const social = await suite.api('/api/v1/contacts', { method: 'POST', json: { lastName: unique('Nul'), socialProfiles: { github: 'a\u0000b' } } });
    expect(await problemOf(social, 400)).toMatchObject({ errors: [{ field: 'socialProfiles.github' }] });
    const custom = await suite.api('/api/v1/companies', { method: 'POST', json: { name: unique('Nul'), customFields: { site: 'http://a.example/\u0000' } } });
    expect(await problemOf(custom, 400)).toMatchObject({ errors: [{ field: 'customFields.site' }] });
  });

  it('refuses a forged cursor of a sorted list (a value that is no timestamp, NUL in a name) with 400 naming cursor', async () => {
    const id = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10';
    for (const [sort, values] of [
      ['createdAt', ['x']],
      ['lastContactedAt', ["2026-01-01'; drop table x"]],
      ['name', ['a\u0000b']],
    ] as const) {
      const res = await suite.api(`/api/v1/companies?sort=${sort}&cursor=${b64({ s: sort, v: values, id })}`);
      expect(await problemOf(res, 400)).toMatchObject({ errors: [{ field: 'cursor' }] });
    }
  });

  it('serves a path in another case like its own (and admits it through load shedding)', async () => {
    const res = await suite.api(`/api/v1/COMPANIES?industry=${industry}&limit=1`);
    expect(res.status).toBe(200);
  });
});
