import { createHash, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import express from 'express';
import { z } from 'zod';
import { moneySchema } from '@crm/contracts';
import { fetchToken } from '@crm/dev/seed';
import { startDevIssuer, type DevIssuer } from '@crm/dev-issuer';
import { createLogger, DomainError, requireContext } from '@crm/platform';
import { DEMO_PASSWORD, organizationId, REALM_FILE } from '@crm/testing';
import { createTokenVerifier } from '../src/auth/keycloak.auth.ts';
import { READ_ROLES, WRITE_ROLES } from '../src/auth/tenant.ts';
import { apiRouter } from '../src/http/api.router.ts';
import { multipart } from '../src/http/multipart.ts';
import { errorHandler } from '../src/http/problem.ts';
import { defineRoute, download, json, noContent, type Route } from '../src/http/route.ts';
import { buildOpenApi } from '../src/openapi/openapi.ts';

/**
 * Every route kind through a real Express app mounted by the gateway's own apiRouter (real
 * bearer-token verification against the development issuer, tenant context, roles, problems),
 * with plain in-memory handlers: no backend is involved.
 */

const ACME = organizationId('acme');
const MAX_FILE = 64 * 1024;

const tags = new Map<string, Set<string>>();
const ifMatchSeen: (string | undefined)[] = [];
const stored: { title: string; size: number }[] = [];

const convertedSchema = z.object({ leadId: z.uuid(), opportunityName: z.string(), amount: moneySchema.nullable(), convertedBy: z.string() });
const documentSchema = z.object({
  id: z.string(),
  title: z.string(),
  filename: z.string().nullable(),
  mimeType: z.string(),
  size: z.int(),
  sha256: z.string(),
  organizationId: z.string(),
});

const routes: Route[] = [
  // an action with a validated body
  defineRoute({
    method: 'post',
    path: '/leads/:id/convert',
    operationId: 'convertLead',
    summary: 'Convert a lead into an opportunity',
    tag: 'leads',
    roles: WRITE_ROLES,
    params: z.strictObject({ id: z.uuid() }),
    body: z.strictObject({ opportunityName: z.string().min(1).max(200), amount: moneySchema.optional() }),
    response: json(convertedSchema),
    problems: { '404': 'no such lead', '422': 'already converted' },
    handler: async ({ params, body, ctx }) => ({
      leadId: params.id,
      opportunityName: body.opportunityName,
      amount: body.amount ?? null,
      convertedBy: ctx.userId,
    }),
  }),
  // a record read, registered before /companies/export on purpose: mounting puts static segments first
  defineRoute({
    method: 'get',
    path: '/companies/:id',
    operationId: 'getCompany',
    summary: 'Get a company',
    tag: 'companies',
    roles: READ_ROLES,
    response: json(z.object({ id: z.string() })),
    handler: async ({ params }) => ({ id: params['id'] ?? '' }),
  }),
  // a child resource: PUT and DELETE answer 204, the list is JSON
  defineRoute({
    method: 'put',
    path: '/companies/:id/tags/:tagId',
    operationId: 'tagCompany',
    summary: 'Tag a company',
    tag: 'companies',
    roles: WRITE_ROLES,
    ifMatch: true,
    response: noContent('tagged'),
    handler: async ({ params, expectedVersion }) => {
      ifMatchSeen.push(expectedVersion);
      const set = tags.get(params['id'] ?? '') ?? new Set<string>();
      set.add(params['tagId'] ?? '');
      tags.set(params['id'] ?? '', set);
    },
  }),
  defineRoute({
    method: 'delete',
    path: '/companies/:id/tags/:tagId',
    operationId: 'untagCompany',
    summary: 'Remove a tag from a company',
    tag: 'companies',
    roles: WRITE_ROLES,
    response: noContent('untagged'),
    handler: async ({ params }) => {
      tags.get(params['id'] ?? '')?.delete(params['tagId'] ?? '');
    },
  }),
  defineRoute({
    method: 'get',
    path: '/companies/:id/tags',
    operationId: 'listCompanyTags',
    summary: 'Tags of a company',
    tag: 'companies',
    roles: READ_ROLES,
    response: json(z.object({ data: z.array(z.string()) })),
    handler: async ({ params }) => ({ data: [...(tags.get(params['id'] ?? '') ?? [])].sort() }),
  }),
  // a singleton read
  defineRoute({
    method: 'get',
    path: '/analytics/pipeline-summary',
    operationId: 'getPipelineSummary',
    summary: 'Pipeline summary',
    tag: 'analytics',
    roles: READ_ROLES,
    response: json(z.object({ organizationId: z.string(), openOpportunities: z.int() })),
    handler: async ({ ctx }) => ({ organizationId: ctx.organizationId, openOpportunities: 3 }),
  }),
  // a streamed download
  defineRoute({
    method: 'get',
    path: '/companies/export',
    operationId: 'exportCompanies',
    summary: 'Companies as CSV',
    tag: 'companies',
    roles: READ_ROLES,
    query: z.strictObject({ rows: z.coerce.number().int().min(0).max(100_000), fail: z.enum(['before', 'after']).optional() }),
    response: download({ contentTypes: ['text/csv'] }),
    problems: { '422': 'export refused' },
    handler: async ({ query }) => ({
      contentType: 'text/csv; charset=utf-8',
      filename: 'companies.csv',
      body: (async function* () {
        if (query.fail === 'before') throw new DomainError('rule_violation', 'EXPORT_REFUSED', 'export refused');
        yield 'row,organization\n';
        for (let i = 0; i < query.rows; i++) {
          if (query.fail === 'after' && i === 10) throw new Error('backend failed mid-stream');
          await new Promise<void>((resolve) => setImmediate(resolve));
          // the request context must survive backpressure pauses (gRPC calls need the tenant)
          yield `${i},${requireContext().organizationId}\n`;
        }
      })(),
    }),
  }),
  // a multipart upload
  defineRoute({
    method: 'post',
    path: '/companies/:id/documents',
    operationId: 'uploadCompanyDocument',
    summary: 'Attach a document to a company',
    tag: 'companies',
    roles: WRITE_ROLES,
    body: multipart({
      fields: z.strictObject({ title: z.string().min(1).max(100), note: z.string().max(500).optional() }),
      maxFileSize: MAX_FILE,
      description: 'the document',
    }),
    response: json(documentSchema, { status: 201, location: (d) => `/api/v1/documents/${d.id}` }),
    handler: async ({ body }) => {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of body.file.stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
      stored.push({ title: body.fields.title, size });
      return {
        id: `doc-${stored.length}`,
        title: body.fields.title,
        filename: body.file.filename ?? null,
        mimeType: body.file.mimeType,
        size,
        sha256: hash.digest('hex'),
        organizationId: requireContext().organizationId,
      };
    },
  }),
];

let issuer: DevIssuer;
let server: Server;
let base: string;
const tokens = new Map<string, string>();

async function call(path: string, init: RequestInit & { as?: string } = {}): Promise<Response> {
  const { as = 'admin@acme.test', ...rest } = init;
  let token = tokens.get(as);
  if (!token) {
    token = await fetchToken(issuer.issuerUrl, as, DEMO_PASSWORD);
    tokens.set(as, token);
  }
  const headers = new Headers(rest.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(`${base}/api/v1${path}`, { ...rest, headers });
}

const postJson = (path: string, body: unknown, as?: string): Promise<Response> =>
  call(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, ...(as ? { as } : {}) });

async function problemOf(res: Response, status: number): Promise<{ type: string; errors?: { field: string; message: string }[] }> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as { type: string; errors?: { field: string; message: string }[] };
}

beforeAll(async () => {
  issuer = await startDevIssuer({ realmFile: REALM_FILE, port: 0 });
  const logger = createLogger('routes-test', 'silent');
  const app = express();
  app.use((_req, res, next) => {
    res.locals['requestId'] = 'routes-test';
    next();
  });
  app.use(
    '/api/v1',
    apiRouter({
      routes,
      verifier: createTokenVerifier({ authServerUrl: issuer.baseUrl, realm: 'crm', clientId: 'crm-gateway' }),
      realm: 'crm',
      rateLimitPerMinute: 10_000,
      logger,
      onInvalidToken: () => undefined,
    }),
  );
  app.use(errorHandler(logger));
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server?.close(() => resolve());
    server?.closeAllConnections();
  });
  await issuer?.close();
});

describe('JSON operations', () => {
  const lead = '0196a3e0-0000-7000-8000-000000000001';

  it('runs an action with a validated body, as the caller', async () => {
    const res = await postJson(`/leads/${lead}/convert`, { opportunityName: 'Big deal', amount: { amount: '1000.00', currency: 'EUR' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ leadId: lead, opportunityName: 'Big deal', amount: { amount: '1000.00', currency: 'EUR' } });
  });

  it('answers 400 naming every invalid and unknown body field', async () => {
    const res = await postJson(`/leads/${lead}/convert`, { opportunityName: '', amount: { amount: 'x', currency: 'EUR' }, stage: 'won' });
    const body = await problemOf(res, 400);
    expect(body.type).toBe('urn:crm:problem:validation-error');
    expect(body.errors?.map((e) => e.field).sort()).toEqual(['amount.amount', 'opportunityName', 'stage']);
    expect(body.errors).toContainEqual({ field: 'stage', message: 'unknown field' });
  });

  it('answers 404 for a malformed id, 403 for a role without the right', async () => {
    await problemOf(await postJson('/leads/not-a-uuid/convert', { opportunityName: 'x' }), 404);
    await problemOf(await postJson(`/leads/${lead}/convert`, { opportunityName: 'x' }, 'viewer@acme.test'), 403);
  });

  it('puts and deletes a child resource (204), with If-Match read into the expected version', async () => {
    const company = randomBytes(4).toString('hex');
    const put = await call(`/companies/${company}/tags/vip`, { method: 'PUT', headers: { 'if-match': '"7"' } });
    expect(put.status).toBe(204);
    expect(await put.text()).toBe('');
    expect(ifMatchSeen.at(-1)).toBe('7');
    expect((await call(`/companies/${company}/tags/partner`, { method: 'PUT' })).status).toBe(204);
    expect(ifMatchSeen.at(-1)).toBeUndefined();
    expect(await (await call(`/companies/${company}/tags`)).json()).toEqual({ data: ['partner', 'vip'] });

    await problemOf(await call(`/companies/${company}/tags/x`, { method: 'PUT', headers: { 'if-match': 'W/"7"' } }), 412);
    expect((await call(`/companies/${company}/tags/vip`, { method: 'DELETE' })).status).toBe(204);
    expect(await (await call(`/companies/${company}/tags`)).json()).toEqual({ data: ['partner'] });
  });

  it('serves a singleton read in the caller’s organization', async () => {
    const res = await call('/analytics/pipeline-summary');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ organizationId: ACME, openOpportunities: 3 });
  });

  it('still requires a token', async () => {
    const res = await fetch(`${base}/api/v1/analytics/pipeline-summary`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="crm"/);
  });
});

describe('streamed downloads', () => {
  it('streams every chunk with attachment headers (static /companies/export before /companies/:id)', async () => {
    const rows = 20_000;
    const res = await call(`/companies/export?rows=${rows}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename=companies.csv');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const lines = (await res.text()).trimEnd().split('\n');
    expect(lines).toHaveLength(rows + 1);
    expect(lines[0]).toBe('row,organization');
    expect(lines.slice(1).every((line, i) => line === `${i},${ACME}`)).toBe(true);
    expect(await (await call('/companies/abc')).json()).toEqual({ id: 'abc' });
  });

  it('turns a failure before the first chunk into problem+json', async () => {
    const body = await problemOf(await call('/companies/export?rows=5&fail=before'), 422);
    expect(body).toMatchObject({ type: 'urn:crm:problem:rule-violation', code: 'EXPORT_REFUSED' });
  });

  it('aborts the connection on a failure after the first chunk', async () => {
    const res = await call('/companies/export?rows=100&fail=after');
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
  });

  it('validates the query (400 naming the field)', async () => {
    const body = await problemOf(await call('/companies/export?rows=-1'), 400);
    expect(body.errors?.map((e) => e.field)).toEqual(['rows']);
  });
});

describe('multipart uploads', () => {
  const form = (parts: [string, string | Blob, string?][]): FormData => {
    const data = new FormData();
    for (const [name, value, filename] of parts) {
      if (typeof value === 'string') data.append(name, value);
      else data.append(name, value, filename);
    }
    return data;
  };
  const upload = (data: FormData | string, headers: Record<string, string> = {}): Promise<Response> =>
    call('/companies/c1/documents', { method: 'POST', body: data, headers });

  it('streams the file to the handler with the fields', async () => {
    const bytes = randomBytes(40_000);
    const res = await upload(
      form([
        ['title', 'Master agreement'],
        ['file', new Blob([bytes], { type: 'application/pdf' }), 'agreement ü.pdf'],
      ]),
    );
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/^\/api\/v1\/documents\/doc-\d+$/);
    expect(await res.json()).toEqual({
      id: expect.any(String),
      title: 'Master agreement',
      filename: 'agreement ü.pdf',
      mimeType: 'application/pdf',
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      organizationId: ACME,
    });
  });

  it('accepts a file of exactly the limit and refuses one byte more', async () => {
    const exact = await upload(
      form([
        ['title', 'Exact'],
        ['file', new Blob([randomBytes(MAX_FILE)]), 'exact.bin'],
      ]),
    );
    expect(exact.status).toBe(201);
    expect(((await exact.json()) as { size: number }).size).toBe(MAX_FILE);
    await problemOf(
      await upload(
        form([
          ['title', 'Over'],
          ['file', new Blob([randomBytes(MAX_FILE + 1)]), 'over.bin'],
        ]),
      ),
      413,
    );
  });

  it('answers 413 for a file over the limit, and the handler never sees a complete file', async () => {
    const before = stored.length;
    const res = await upload(
      form([
        ['title', 'Too big'],
        ['file', new Blob([randomBytes(MAX_FILE * 3)]), 'big.bin'],
      ]),
    );
    const body = await problemOf(res, 413);
    expect(body.type).toBe('urn:crm:problem:payload-too-large');
    expect(stored.length).toBe(before);
  });

  it('answers 413 for a second file', async () => {
    const res = await upload(
      form([
        ['title', 'Two'],
        ['file', new Blob(['a']), 'a.txt'],
        ['file', new Blob(['b']), 'b.txt'],
      ]),
    );
    await problemOf(res, 413);
  });

  it('answers 415 when the body is not multipart', async () => {
    const body = await problemOf(await upload(JSON.stringify({ title: 'x' }), { 'content-type': 'application/json' }), 415);
    expect(body.type).toBe('urn:crm:problem:unsupported-media-type');
  });

  it('answers 400 naming an unknown field, a missing field and a missing file', async () => {
    const unknown = await problemOf(
      await upload(
        form([
          ['title', 'x'],
          ['owner', 'me'],
          ['file', new Blob(['a']), 'a.txt'],
        ]),
      ),
      400,
    );
    expect(unknown.errors).toEqual([{ field: 'owner', message: 'unknown field' }]);
    const missing = await problemOf(await upload(form([['file', new Blob(['a']), 'a.txt']])), 400);
    expect(missing.errors?.map((e) => e.field)).toEqual(['title']);
    const noFile = await problemOf(await upload(form([['title', 'x']])), 400);
    expect(noFile.errors?.map((e) => e.field)).toEqual(['file']);
    const late = await problemOf(
      await upload(
        form([
          ['title', 'x'],
          ['file', new Blob(['a']), 'a.txt'],
          ['note', 'too late'],
        ]),
      ),
      400,
    );
    expect(late.errors).toEqual([{ field: 'note', message: 'must precede the file' }]);
  });
});

describe('OpenAPI', () => {
  const doc = (): { paths: Record<string, Record<string, { operationId: string; requestBody?: unknown; responses: Record<string, unknown> }>> } =>
    buildOpenApi(routes, `${issuer.issuerUrl}`) as ReturnType<typeof doc>;

  it('documents every route under its path and method, with its operationId', () => {
    const { paths } = doc();
    for (const route of routes) {
      const path = `/api/v1${route.path.replace(/:(\w+)/g, '{$1}')}`;
      expect({ path, method: route.method, operationId: paths[path]?.[route.method]?.operationId }).toEqual({
        path,
        method: route.method,
        operationId: route.operationId,
      });
    }
  });

  it('documents bodies, downloads, uploads and their problems', () => {
    const { paths } = doc();
    const convert = paths['/api/v1/leads/{id}/convert']?.['post'];
    expect(convert?.requestBody).toMatchObject({ content: { 'application/json': { schema: { type: 'object', required: ['opportunityName'] } } } });
    expect(Object.keys(convert?.responses ?? {})).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '422', '429']));
    const exported = paths['/api/v1/companies/export']?.['get'];
    expect(exported?.responses['200']).toMatchObject({ content: { 'text/csv': {} }, headers: { 'Content-Disposition': expect.any(Object) } });
    const uploadOp = paths['/api/v1/companies/{id}/documents']?.['post'];
    expect(uploadOp?.requestBody).toMatchObject({
      content: {
        'multipart/form-data': {
          schema: { properties: { title: { type: 'string' }, file: { contentMediaType: 'application/octet-stream' } }, required: ['title', 'file'] },
        },
      },
    });
    expect(Object.keys(uploadOp?.responses ?? {})).toEqual(expect.arrayContaining(['201', '413', '415']));
    expect(Object.keys(paths['/api/v1/companies/{id}/tags/{tagId}']?.['put']?.responses ?? {})).toEqual(expect.arrayContaining(['204', '412']));
  });

  it('refuses two routes for the same operation', () => {
    expect(() => buildOpenApi([...routes, routes[0]!], issuer.issuerUrl)).toThrow(/two routes/);
  });
});
