import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from '@jest/globals';
import { fetchToken, HttpProblemError, readAccounts, seedDemoData, seedKey, toCompanyBodies, type AccountRow } from './seed.ts';

const csvPath = fileURLToPath(new URL('../../../data/maven-crm/accounts.csv', import.meta.url));
const csvText = readFileSync(csvPath, 'utf8');

function row(account: string, subsidiary_of: string | null = null): AccountRow {
  return { account, sector: 'retail', year_established: 2000, revenue: '1', employees: 1, office_location: 'United States', subsidiary_of };
}

describe('readAccounts (data/maven-crm/accounts.csv)', () => {
  it('reads 85 typed rows, keeping revenue as exact text', () => {
    const rows = readAccounts(csvText);
    expect(rows).toHaveLength(85);
    expect(rows[0]).toEqual({
      account: 'Acme Corporation',
      sector: 'technolgy',
      year_established: 1996,
      revenue: '1100.04',
      employees: 2822,
      office_location: 'United States',
      subsidiary_of: null,
    });
  });

  it('names the CSV line of a malformed row', () => {
    const bad = 'account,sector,year_established,revenue,employees,office_location,subsidiary_of\nA,retail,2000,12,3,US,\nB,retail,2000,lots,3,US,\n';
    expect(() => readAccounts(bad)).toThrow(/line 3: revenue/);
    expect(() => readAccounts(bad.replace('lots', '5').replace(',3,US,\n', ',2.5,US,\n'))).toThrow(/line 2: employees/);
  });
});

describe('toCompanyBodies', () => {
  const companies = toCompanyBodies(readAccounts(csvText));
  const byName = new Map(companies.map((c) => [c.name, c]));

  it('yields one company per account, none with a warning', () => {
    expect(companies).toHaveLength(85);
    expect(byName.size).toBe(85);
    expect(companies.filter((c) => c.warning !== undefined)).toEqual([]);
  });

  it('puts every parent before its subsidiaries', () => {
    const index = new Map(companies.map((c, i) => [c.name, i]));
    const children = companies.filter((c) => c.parentName !== undefined);
    expect(children).toHaveLength(15);
    for (const c of children) expect(index.get(c.parentName!)).toBeLessThan(index.get(c.name)!);
  });

  it('links subsidiaries to their parents, also when the parent comes later in the CSV', () => {
    expect(byName.get('Bluth Company')?.parentName).toBe('Acme Corporation');
    // Cheers precedes Massive Dynamic in the file
    expect(byName.get('Cheers')?.parentName).toBe('Massive Dynamic');
    expect(byName.get('Nam-zim')?.parentName).toBe('Warephase');
    expect(byName.get('Acme Corporation')?.parentName).toBeUndefined();
  });

  it('normalises the industry, fixing "technolgy"', () => {
    expect(byName.get('Acme Corporation')?.body.industry).toBe('technology');
    expect(byName.get('Betatech')?.body.industry).toBe('medical');
    expect(companies.some((c) => c.body.industry === 'technolgy')).toBe(false);
  });

  it('turns revenue in USD millions into an exact USD amount with 2 decimals', () => {
    expect(byName.get('Acme Corporation')?.body.annualRevenue).toEqual({ amount: '1100040000.00', currency: 'USD' });
    expect(byName.get('Cheers')?.body.annualRevenue?.amount).toBe('4269900000.00');
    expect(byName.get('Condax')?.body.annualRevenue?.amount).toBe('4540000.00');
    expect(byName.get('Kan-code')?.body.annualRevenue?.amount).toBe('11698030000.00');
  });

  it('fixes "Philipines" and keeps other countries', () => {
    expect(byName.get('Bioholding')?.body.address).toEqual({ country: 'Philippines' });
    expect(byName.get('Betatech')?.body.address).toEqual({ country: 'Kenya' });
    expect(companies.some((c) => c.body.address?.country === 'Philipines')).toBe(false);
  });

  it('sends only fields the Company API accepts, employees as integers', () => {
    const allowed = new Set(['name', 'domain', 'industry', 'parentCompanyId', 'employees', 'annualRevenue', 'address', 'ownerId']);
    for (const c of companies) {
      for (const key of Object.keys(c.body)) expect(allowed.has(key)).toBe(true);
      expect(Number.isInteger(c.body.employees)).toBe(true);
    }
    expect(byName.get('Acme Corporation')?.body.employees).toBe(2822);
  });

  it('creates a company with an unknown parent without one, and says so', () => {
    const [a, b] = toCompanyBodies([row('A', 'Nobody'), row('B', 'A')]);
    expect(a).toMatchObject({ name: 'A', warning: expect.stringContaining('"Nobody"') });
    expect(a?.parentName).toBeUndefined();
    expect(b).toMatchObject({ name: 'B', parentName: 'A' });
    expect(b?.warning).toBeUndefined();
  });

  it('breaks a parent cycle with a warning instead of recursing forever', () => {
    const result = toCompanyBodies([row('A', 'B'), row('B', 'A')]);
    expect(result.map((c) => c.name)).toEqual(['B', 'A']);
    expect(result[0]?.warning).toMatch(/cycle/);
    expect(result[1]?.parentName).toBe('B');
  });

  it('rejects duplicate account names', () => {
    expect(() => toCompanyBodies([row('A'), row('A')])).toThrow(/duplicate/);
  });
});

describe('seedKey', () => {
  it('slugs the name into a printable ASCII Idempotency-Key', () => {
    expect(seedKey('Acme Corporation')).toBe('seed-acme-acme-corporation');
    expect(seedKey('Gekko & Co')).toBe('seed-acme-gekko-co');
    expect(seedKey('Ünïcode Café')).toBe('seed-acme-unicode-cafe');
    expect(seedKey('株式会社')).toMatch(/^seed-acme-[0-9a-f]{16}$/);
  });
});

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

function parseBody(req: IncomingMessage, text: string): unknown {
  if (!text) return undefined;
  return req.headers['content-type']?.includes('json') ? (JSON.parse(text) as unknown) : Object.fromEntries(new URLSearchParams(text));
}

/** A fake gateway/issuer on a free port: `reply` decides each answer (n = 1-based request number); every request is recorded. */
async function withFakeServer(
  reply: (req: Recorded, n: number) => { status: number; body: unknown },
  run: (url: string, requests: Recorded[]) => Promise<void>,
): Promise<void> {
  const requests: Recorded[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded: Recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: parseBody(req, Buffer.concat(chunks).toString('utf8')),
      };
      requests.push(recorded);
      const answer = reply(recorded, requests.length);
      res.writeHead(answer.status, { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json' }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const emptyPage = { status: 200, body: { data: [], nextCursor: null } };

describe('seedDemoData (against a fake gateway)', () => {
  it('skips when companies already exist', async () => {
    await withFakeServer(
      () => ({ status: 200, body: { data: [{ id: 'x', name: 'Existing' }], nextCursor: null } }),
      async (url, requests) => {
        await expect(seedDemoData({ gatewayUrl: url, token: 't', csvPath })).resolves.toEqual({ created: 0, skipped: true });
        expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /api/v1/companies?limit=1']);
        expect(requests[0]?.headers['authorization']).toBe('Bearer t');
      },
    );
  });

  it('creates all 85 parent-first, linking parentCompanyId to the id returned for the parent', async () => {
    await withFakeServer(
      (req, n) => (req.method === 'GET' ? emptyPage : { status: 201, body: { id: `id-${n}`, ...(req.body as object) } }),
      async (url, requests) => {
        await expect(seedDemoData({ gatewayUrl: `${url}/`, token: 't', csvPath })).resolves.toEqual({ created: 85, skipped: false });
        const posts = requests.filter((r) => r.method === 'POST');
        expect(posts).toHaveLength(85);
        const idOf = new Map(requests.map((r, i) => [(r.body as { name?: string } | undefined)?.name, `id-${i + 1}`]));
        const bluth = posts.find((r) => (r.body as { name: string }).name === 'Bluth Company');
        expect(bluth?.body).toMatchObject({ parentCompanyId: idOf.get('Acme Corporation'), industry: 'technology' });
        expect(bluth?.headers['idempotency-key']).toBe('seed-acme-bluth-company');
        expect(new Set(posts.map((r) => r.headers['idempotency-key'])).size).toBe(85);
        expect(posts.every((r) => r.url === '/api/v1/companies' && r.headers['content-type'] === 'application/json')).toBe(true);
      },
    );
  });

  it('throws with the problem JSON on a non-2xx answer, stopping at the first failure', async () => {
    const problem = { type: 'https://crm.example/problems/validation-error', title: 'Invalid request', status: 400 };
    await withFakeServer(
      (req) => (req.method === 'GET' ? emptyPage : { status: 400, body: problem }),
      async (url, requests) => {
        const error = await seedDemoData({ gatewayUrl: url, token: 't', csvPath }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HttpProblemError);
        expect((error as HttpProblemError).status).toBe(400);
        expect((error as HttpProblemError).problem).toEqual(problem);
        expect((error as Error).message).toContain('Acme Corporation');
        expect(requests.filter((r) => r.method === 'POST')).toHaveLength(1);
      },
    );
  });
});

describe('fetchToken (against a fake issuer)', () => {
  it('uses the password grant of crm-cli on realm crm and returns the access token', async () => {
    await withFakeServer(
      () => ({ status: 200, body: { access_token: 'abc', expires_in: 300 } }),
      async (url, requests) => {
        await expect(fetchToken(url, 'admin@acme.test', 'crm-dev')).resolves.toBe('abc');
        expect(requests[0]?.url).toBe('/realms/crm/protocol/openid-connect/token');
        expect(requests[0]?.headers['content-type']).toBe('application/x-www-form-urlencoded');
        expect(requests[0]?.body).toEqual({ grant_type: 'password', client_id: 'crm-cli', username: 'admin@acme.test', password: 'crm-dev' });
      },
    );
  });

  it('throws with the OAuth error on a refused grant', async () => {
    await withFakeServer(
      () => ({ status: 401, body: { error: 'invalid_grant' } }),
      async (url) => {
        await expect(fetchToken(`${url}/realms/crm`, 'admin@acme.test', 'wrong')).rejects.toThrow(/401.*invalid_grant/);
      },
    );
  });
});
