import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitFor } from '@crm/testing';
import { startTestSuite, type TestSuite } from './support/suite.ts';

let suite: TestSuite;

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

interface Company {
  id: string;
  name: string;
  version: number;
  parentCompanyId: string | null;
  industry: string | null;
}

async function overviewCount(as = 'admin@acme.test'): Promise<number> {
  const res = await suite.api('/api/v1/analytics/overview', { as });
  expect(res.status).toBe(200);
  return ((await res.json()) as { companyCount: number }).companyCount;
}

async function createCompany(body: Record<string, unknown>, as = 'admin@acme.test'): Promise<Company> {
  const res = await suite.api('/api/v1/companies', { method: 'POST', json: body, as });
  expect(res.status).toBe(201);
  return (await res.json()) as Company;
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe('companies through the gateway', () => {
  it('stores a company, serves it back, and the analytics overview counts it within 2 s', async () => {
    const before = await overviewCount();
    const created = await createCompany({
      name: 'Acme Corporation',
      industry: 'technology',
      employees: 2822,
      annualRevenue: { amount: '1100040000', currency: 'USD' },
    });
    expect(created).toMatchObject({ name: 'Acme Corporation', version: 1 });

    const res = await suite.api(`/api/v1/companies/${created.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(await res.json()).toMatchObject({ id: created.id, industry: 'technology', annualRevenue: { amount: '1100040000.00', currency: 'USD' } });

    const started = Date.now();
    await waitFor('overview to count the new company', async () => (await overviewCount()) === before + 1, 2000, 25);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("answers 404 for another organization's company, and never lists it", async () => {
    const acme = await createCompany({ name: 'Tenant-private Inc' });
    const get = await suite.api(`/api/v1/companies/${acme.id}`, { as: 'admin@globex.test' });
    expect(get.status).toBe(404);
    expect(get.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const patch = await suite.api(`/api/v1/companies/${acme.id}`, { method: 'PATCH', json: { name: 'stolen' }, as: 'admin@globex.test' });
    expect(patch.status).toBe(404);
    const list = (await (await suite.api('/api/v1/companies?limit=200', { as: 'admin@globex.test' })).json()) as { data: Company[] };
    expect(list.data.map((c) => c.id)).not.toContain(acme.id);
    expect((await suite.api(`/api/v1/companies/${acme.id}`)).status).toBe(200);
  });

  it('refuses to create a subsidiary of a parent from another organization (422)', async () => {
    const globexParent = await createCompany({ name: 'Globex Holding' }, 'admin@globex.test');
    const res = await suite.api('/api/v1/companies', { method: 'POST', json: { name: 'Sneaky Sub', parentCompanyId: globexParent.id } });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ code: 'PARENT_COMPANY_NOT_FOUND', errors: [{ field: 'parentCompanyId' }] });
  });
});

describe('authentication and roles', () => {
  it('answers 401 with WWW-Authenticate without a token', async () => {
    const res = await suite.api('/api/v1/companies', { as: null });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="crm"/);
    expect(await res.json()).toMatchObject({ status: 401, type: 'urn:crm:problem:unauthenticated' });
  });

  it('answers 401 to expired, wrong-issuer, wrong-audience, tampered and alg:none tokens', async () => {
    const good = await suite.token('admin@acme.test');
    const claims = claimsOf(good);
    const now = Math.floor(Date.now() / 1000);
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const tamperedPayload = Buffer.from(JSON.stringify({ ...claims, realm_access: { roles: ['crm-admin', 'crm-manager'] } })).toString('base64url');
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
    const bad: Record<string, string> = {
      expired: await suite.issuer.sign({ ...claims, iat: now - 600, exp: now - 60 }),
      wrongIssuer: await suite.issuer.sign({ ...claims, iss: 'http://127.0.0.1:9/realms/crm' }),
      wrongAudience: await suite.issuer.sign({ ...claims, aud: 'some-other-api', azp: 'some-other-api' }),
      tamperedPayload: `${header}.${tamperedPayload}.${signature}`,
      tamperedSignature: `${header}.${payload}.${flipped}`,
      algNone: none,
    };
    // the untampered token works, so each refusal below is about the one thing changed
    expect((await fetch(`${suite.gateway.url}/api/v1/companies`, { headers: { authorization: `Bearer ${good}` } })).status).toBe(200);
    for (const [name, token] of Object.entries(bad)) {
      const res = await fetch(`${suite.gateway.url}/api/v1/companies`, { headers: { authorization: `Bearer ${token}` } });
      expect({ name, status: res.status }).toEqual({ name, status: 401 });
      expect(res.headers.get('www-authenticate')).toContain('invalid_token');
    }
  });

  it('answers 403 when viewer@acme.test creates a company', async () => {
    const res = await suite.api('/api/v1/companies', { method: 'POST', json: { name: 'Viewer Co' }, as: 'viewer@acme.test' });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ status: 403, type: 'urn:crm:problem:forbidden' });
    expect((await suite.api('/api/v1/companies', { as: 'viewer@acme.test' })).status).toBe(200);
  });

  it("lets a rep edit their own company but not someone else's", async () => {
    const own = await createCompany({ name: 'Rep Owned' }, 'rep@acme.test');
    expect((await suite.api(`/api/v1/companies/${own.id}`, { method: 'PATCH', json: { industry: 'retail' }, as: 'rep@acme.test' })).status).toBe(200);
    const others = await createCompany({ name: 'Manager Owned' }, 'manager@acme.test');
    const res = await suite.api(`/api/v1/companies/${others.id}`, { method: 'PATCH', json: { industry: 'retail' }, as: 'rep@acme.test' });
    expect(res.status).toBe(403);
  });
});

describe('REST conventions', () => {
  it('rejects an unknown body field with 400 naming it, and stores nothing', async () => {
    const res = await suite.api('/api/v1/companies', { method: 'POST', json: { name: 'Mass Assign', isAdmin: true } });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ type: 'urn:crm:problem:validation-error', errors: [{ field: 'isAdmin', message: 'unknown field' }] });
    const list = (await (await suite.api('/api/v1/companies?q=Mass%20Assign')).json()) as { data: Company[] };
    expect(list.data).toHaveLength(0);
  });

  it('lists every invalid field in one 400', async () => {
    const res = await suite.api('/api/v1/companies', { method: 'POST', json: { name: '', employees: -3, annualRevenue: { amount: '12,5', currency: 'usd' } } });
    expect(res.status).toBe(400);
    const fields = ((await res.json()) as { errors: { field: string }[] }).errors.map((e) => e.field).sort();
    expect(fields).toEqual(['annualRevenue.amount', 'annualRevenue.currency', 'employees', 'name']);
  });

  it('answers 412 to a stale If-Match and keeps the newer data', async () => {
    const company = await createCompany({ name: 'Versioned Ltd' });
    const first = await suite.api(`/api/v1/companies/${company.id}`, { method: 'PATCH', json: { industry: 'finance' }, headers: { 'if-match': '"1"' } });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"2"');
    const stale = await suite.api(`/api/v1/companies/${company.id}`, { method: 'PATCH', json: { industry: 'retail' }, headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(412);
    const staleDelete = await suite.api(`/api/v1/companies/${company.id}`, { method: 'DELETE', headers: { 'if-match': '"1"' } });
    expect(staleDelete.status).toBe(412);
    expect(await (await suite.api(`/api/v1/companies/${company.id}`)).json()).toMatchObject({ industry: 'finance', version: 2 });
  });

  it('replays the same response for a repeated Idempotency-Key and stores one company', async () => {
    const key = `key-${Date.now()}`;
    const body = { name: 'Idempotent Industries', industry: 'energy' };
    const first = await suite.api('/api/v1/companies', { method: 'POST', json: body, headers: { 'idempotency-key': key } });
    const second = await suite.api('/api/v1/companies', { method: 'POST', json: body, headers: { 'idempotency-key': key } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect(await second.json()).toEqual(await first.json());
    const list = (await (await suite.api('/api/v1/companies?q=Idempotent%20Industries')).json()) as { data: Company[] };
    expect(list.data).toHaveLength(1);
    const reused = await suite.api('/api/v1/companies', { method: 'POST', json: { ...body, industry: 'other' }, headers: { 'idempotency-key': key } });
    expect(reused.status).toBe(422);
  });

  it('pages with a cursor in creation order without gaps or repeats', async () => {
    const names = ['Page A', 'Page B', 'Page C', 'Page D', 'Page E'];
    for (const name of names) await createCompany({ name, industry: 'paging' });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await suite.api(`/api/v1/companies?industry=paging&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      const page = (await res.json()) as { data: Company[]; nextCursor: string | null };
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((c) => c.name));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(names);
  });

  it('keeps the company hierarchy acyclic (422) and refuses deleting a parent with subsidiaries', async () => {
    const parent = await createCompany({ name: 'Hierarchy Parent' });
    const child = await createCompany({ name: 'Hierarchy Child', parentCompanyId: parent.id });
    const cycle = await suite.api(`/api/v1/companies/${parent.id}`, { method: 'PATCH', json: { parentCompanyId: child.id } });
    expect(cycle.status).toBe(422);
    expect(await cycle.json()).toMatchObject({ code: 'COMPANY_HIERARCHY_CYCLE' });
    const del = await suite.api(`/api/v1/companies/${parent.id}`, { method: 'DELETE' });
    expect(del.status).toBe(422);
    expect((await suite.api(`/api/v1/companies/${child.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await suite.api(`/api/v1/companies/${parent.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await suite.api(`/api/v1/companies/${parent.id}`)).status).toBe(404);
  });

  it('serves contacts with the same conventions (409 on a duplicate email)', async () => {
    const company = await createCompany({ name: 'Contact Employer' });
    const created = await suite.api('/api/v1/contacts', {
      method: 'POST',
      json: { firstName: 'Ada', lastName: 'Lovelace', email: 'ada@example.com', companyId: company.id },
    });
    expect(created.status).toBe(201);
    const dup = await suite.api('/api/v1/contacts', { method: 'POST', json: { firstName: 'Other', lastName: 'Ada', email: 'ADA@example.com' } });
    expect(dup.status).toBe(409);
    expect(await dup.json()).toMatchObject({ code: 'CONTACT_EMAIL_TAKEN', errors: [{ field: 'email' }] });
    const list = (await (await suite.api(`/api/v1/contacts?companyId=${company.id}`)).json()) as { data: { email: string }[] };
    expect(list.data.map((c) => c.email)).toEqual(['ada@example.com']);
  });

  it('serves the OpenAPI 3.1 document and the docs page', async () => {
    const doc = (await (await fetch(`${suite.gateway.url}/api/v1/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/companies', '/api/v1/companies/{id}', '/api/v1/contacts', '/api/v1/analytics/overview']),
    );
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Company', 'CompanyCreate', 'Problem', 'Money']));
    const page = await fetch(`${suite.gateway.url}/api/docs/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
  });

  it('exposes health, readiness and metrics', async () => {
    expect((await fetch(`${suite.gateway.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${suite.gateway.url}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: true, contacts: true, analytics: true } });
    expect(await (await fetch(`${suite.gateway.url}/metrics`)).text()).toContain('http_server_request_duration_seconds');
  });
});
