import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startDevIssuer } from '@crm/dev-issuer';
import { REALM_FILE, waitFor } from '@crm/testing';
import type { GatewayHandle } from '../src/app.ts';
import { closedUrl } from './support/http-stubs.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * The gateway's edge on the real suite (dev issuer, Postgres, contacts-svc, analytics-svc): token
 * refusals end to end, the issuer split, shared rate limits, body rules, response headers, the
 * ops port and readiness, graceful shutdown. Replicas come from `suite.startGateway` (same
 * database, issuer and backends); production settings unless a test says otherwise.
 */

let suite: TestSuite;
const PRODUCTION = { PUBLIC_OPS_ENDPOINTS: 'false' };

beforeAll(async () => {
  suite = await startTestSuite();
});

afterAll(async () => {
  await suite?.close();
});

interface RawResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Reads a whole raw response. */
function collect(res: IncomingMessage): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    res.on('error', reject);
  });
}

/** A request on a connection of its own (no keep-alive pool), its body written by the caller. */
function rawRequest(url: string, options: { method: string; headers: Record<string, string> }): { req: ClientRequest; response: Promise<RawResponse> } {
  const req = httpRequest(url, { ...options, agent: false });
  const response = new Promise<RawResponse>((resolve, reject) => {
    req.on('response', (res) => collect(res).then(resolve, reject));
    req.on('error', reject);
  });
  return { req, response };
}

const auth = async (user = 'admin@acme.test'): Promise<Record<string, string>> => ({ authorization: `Bearer ${await suite.token(user)}` });

async function problemOf(res: Response, status: number): Promise<{ type: string; errors?: { field: string; message: string }[] }> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as { type: string; errors?: { field: string; message: string }[] };
}

async function metricsOf(gateway: GatewayHandle): Promise<string> {
  return (await fetch(`${gateway.opsUrl}/metrics`)).text();
}

describe('authentication at the edge', () => {
  it('refuses an unauthenticated request before reading its body', async () => {
    const res = await fetch(`${suite.gateway.url}/api/v1/companies`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{ not json' });
    const body = await problemOf(res, 401);
    expect(body.type).toBe('urn:crm:problem:unauthenticated');
    expect(res.headers.get('connection')).toBe('close');
  });

  it('answers 401, never 500, for tokens whose claims have the wrong type', async () => {
    const claims = JSON.parse(Buffer.from((await suite.token('admin@acme.test')).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    const forged = [
      await suite.issuer.sign({ ...claims, exp: 'tomorrow' }),
      await suite.issuer.sign({ ...claims, realm_access: { roles: 'crm-admin' } }),
      await suite.issuer.sign({ ...claims, organization: { acme: { id: ['x'] } } }),
      await suite.issuer.sign({ ...claims, sub: undefined }),
    ];
    for (const token of forged) {
      const res = await fetch(`${suite.gateway.url}/api/v1/companies`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect(await metricsOf(suite.gateway)).toMatch(/auth_token_checks_total\{result="refused",service="gateway"\} [1-9]/);
  });

  it('answers 503 with Retry-After when the realm keys cannot be loaded', async () => {
    const gateway = await suite.startGateway({ ...PRODUCTION, KEYCLOAK_URL: await closedUrl(), KEYCLOAK_PUBLIC_URL: suite.issuer.baseUrl });
    const res = await fetch(`${gateway.url}/api/v1/companies`, { headers: await auth() });
    const body = await problemOf(res, 503);
    expect(body.type).toBe('urn:crm:problem:unavailable');
    expect(res.headers.get('retry-after')).toBe('5');
  });

  it('accepts tokens of the public issuer with keys from the in-cluster URL (Kubernetes issuer split)', async () => {
    const PUBLIC = 'https://login.crm.example';
    const keycloak = await startDevIssuer({ realmFile: REALM_FILE, port: 0, publicBaseUrl: PUBLIC });
    try {
      const gateway = await suite.startGateway({ ...PRODUCTION, KEYCLOAK_URL: keycloak.localUrl, KEYCLOAK_PUBLIC_URL: PUBLIC });
      const token = await keycloak.passwordToken('admin@acme.test');
      expect((await fetch(`${gateway.url}/api/v1/companies`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      const internal = await keycloak.sign({ ...claims, iss: `${keycloak.localUrl}/realms/crm` });
      expect((await fetch(`${gateway.url}/api/v1/companies`, { headers: { authorization: `Bearer ${internal}` } })).status).toBe(401);
      // the docs point browsers at the public URL
      const doc = (await (await fetch(`${gateway.url}/api/v1/openapi.json`)).json()) as {
        components: { securitySchemes: { keycloak: { openIdConnectUrl: string } } };
      };
      expect(doc.components.securitySchemes.keycloak.openIdConnectUrl).toBe(`${PUBLIC}/realms/crm/.well-known/openid-configuration`);
      expect((await fetch(`${gateway.url}/api/docs/`)).headers.get('content-security-policy')).toContain(`connect-src 'self' ${PUBLIC}`);
    } finally {
      await keycloak.close();
    }
  });
});

describe('rate limits shared by every replica', () => {
  it('counts a user’s requests on two gateways against one limit per tenant and user (429 with Retry-After)', async () => {
    const env = { ...PRODUCTION, RATE_LIMIT_PER_MINUTE: '3', RATE_LIMIT_PER_IP_PER_MINUTE: '1000' };
    const [a, b] = [await suite.startGateway(env), await suite.startGateway(env)];
    const client = { 'x-forwarded-for': '203.0.113.10' };
    const as = async (gateway: GatewayHandle, user: string) =>
      fetch(`${gateway.url}/api/v1/companies?limit=1`, { headers: { ...client, ...(await auth(user)) } });
    expect([(await as(a, 'manager@acme.test')).status, (await as(b, 'manager@acme.test')).status, (await as(a, 'manager@acme.test')).status]).toEqual([
      200, 200, 200,
    ]);
    const limited = await as(b, 'manager@acme.test');
    const body = await problemOf(limited, 429);
    expect(body.type).toBe('urn:crm:problem:rate-limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    // both policies are reported (draft-ietf-httpapi-ratelimit-headers-08): the address's, and the user's, exhausted
    expect(limited.headers.get('ratelimit')).toMatch(/^"ip"; r=\d+; t=\d+, "user"; r=0; t=\d+$/);
    // another user of the same client address has a budget of their own
    expect((await as(a, 'rep@acme.test')).status).toBe(200);
  });

  it('limits a client address before authentication, across replicas', async () => {
    const env = { ...PRODUCTION, RATE_LIMIT_PER_IP_PER_MINUTE: '4' };
    const [a, b] = [await suite.startGateway(env), await suite.startGateway(env)];
    const from = (ip: string) => ({ 'x-forwarded-for': ip });
    const statuses: number[] = [];
    for (const gateway of [a, b, a, b, a]) statuses.push((await fetch(`${gateway.url}/api/v1/companies`, { headers: from('198.51.100.7') })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    // a valid token does not help once the address is over its limit
    expect((await fetch(`${b.url}/api/v1/companies`, { headers: { ...from('198.51.100.7'), ...(await auth()) } })).status).toBe(429);
    expect((await fetch(`${b.url}/api/v1/companies`, { headers: from('198.51.100.8') })).status).toBe(401);
  });
});

describe('request bodies', () => {
  const post = async (body: string | Uint8Array, contentType: string): Promise<Response> =>
    fetch(`${suite.gateway.url}/api/v1/companies`, { method: 'POST', headers: { ...(await auth()), 'content-type': contentType }, body });

  it('accepts UTF-8 JSON, with or without charset', async () => {
    expect((await post(JSON.stringify({ name: 'Zürich Zucker AG' }), 'application/json; charset=UTF-8')).status).toBe(201);
    expect((await post(JSON.stringify({ name: 'Ødegaard ASA' }), 'application/json')).status).toBe(201);
  });

  it('answers 415 for another charset or a body that is not JSON', async () => {
    for (const type of ['application/json; charset=utf-16', 'application/json; charset="ISO-8859-1"', 'text/plain', 'application/x-www-form-urlencoded']) {
      const body = await problemOf(await post('{"name":"x"}', type), 415);
      expect(body.type).toBe('urn:crm:problem:unsupported-media-type');
    }
  });

  it('answers 400 naming the field for invalid UTF-8 and for lone surrogates', async () => {
    const invalidUtf8 = Buffer.concat([Buffer.from('{"name":"ok","industry":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
    const utf8 = await problemOf(await post(invalidUtf8, 'application/json'), 400);
    expect(utf8.errors).toEqual([{ field: 'industry', message: 'is not valid UTF-8' }]);
    const surrogate = await problemOf(await post('{"name":"x\\ud800y","industry":"fine"}', 'application/json'), 400);
    expect(surrogate.errors).toEqual([{ field: 'name', message: 'contains a lone surrogate (not Unicode text)' }]);
    const malformed = await problemOf(await post('{"name":', 'application/json'), 400);
    expect(malformed.errors?.map((e) => e.field)).toEqual(['body']);
  });

  it('answers 413 for a body over 1 MB', async () => {
    const body = await problemOf(await post(JSON.stringify({ name: 'x'.repeat(1_100_000) }), 'application/json'), 413);
    expect(body.type).toBe('urn:crm:problem:payload-too-large');
  });
});

describe('response headers', () => {
  it('marks every API answer no-store and nosniff, refusals included', async () => {
    const answers = [
      await fetch(`${suite.gateway.url}/api/v1/companies`, { headers: await auth() }),
      await fetch(`${suite.gateway.url}/api/v1/companies`),
      await fetch(`${suite.gateway.url}/api/v1/nothing-here`, { headers: await auth() }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 401, 404]);
    for (const res of answers) {
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('serves the docs page under a Content-Security-Policy it satisfies: no inline script, assets from the gateway', async () => {
    const page = await fetch(`${suite.gateway.url}/api/docs/`);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain(`connect-src 'self' ${new URL(suite.issuer.baseUrl).origin}`);
    expect(csp).toContain("frame-ancestors 'none'");
    const html = await page.text();
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, content] of scripts) {
      expect(attributes).toMatch(/src="\.\//);
      expect(content?.trim()).toBe('');
    }
    const init = await fetch(`${suite.gateway.url}/api/docs/swagger-ui-init.js`);
    expect(init.headers.get('content-type')).toMatch(/javascript/);
    expect(await init.text()).toContain('"validatorUrl": null');
  });
});

describe('ops port and readiness', () => {
  it('serves metrics and detailed readiness on the ops port only, and a minimal readiness on the public port', async () => {
    const gateway = await suite.startGateway(PRODUCTION);
    expect((await fetch(`${gateway.url}/api/v1/companies`, { headers: await auth() })).status).toBe(200);
    expect(await (await fetch(`${gateway.url}/readyz`)).json()).toEqual({ status: 'ready' });
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(404);
    const ready = await fetch(`${gateway.opsUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: true, contacts: true, analytics: true } });
    const metrics = await metricsOf(gateway);
    expect(metrics).toContain('http_server_request_duration_seconds');
    expect(metrics).toMatch(/auth_token_checks_total\{result="verified",service="gateway"\} 1/);
    expect((await fetch(`${gateway.opsUrl}/healthz`)).status).toBe(200);
  });

  it('stays ready when a backend is down, and reports it on the ops port', async () => {
    const down = new URL(await closedUrl()).host;
    const gateway = await suite.startGateway({ ...PRODUCTION, CONTACTS_GRPC_URL: down });
    const minimal = await fetch(`${gateway.url}/readyz`);
    expect(minimal.status).toBe(200);
    const detailed = await fetch(`${gateway.opsUrl}/readyz`);
    expect(detailed.status).toBe(200);
    expect(await detailed.json()).toEqual({ status: 'ready', checks: { database: true, contacts: false, analytics: true } });
    // its own routes fail on their own; the others still serve
    expect((await fetch(`${gateway.url}/api/v1/companies`, { headers: await auth() })).status).toBe(503);
    expect((await fetch(`${gateway.url}/api/v1/analytics/overview`, { headers: await auth() })).status).toBe(200);
  });
});

describe('graceful shutdown', () => {
  it('stops accepting, reports not ready, lets an in-flight request finish, then closes', async () => {
    const gateway = await suite.startGateway(PRODUCTION);
    const body = JSON.stringify({ name: 'Drained Ltd' });
    const { req, response } = rawRequest(`${gateway.url}/api/v1/companies`, {
      method: 'POST',
      headers: { ...(await auth()), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    });
    req.write(body.slice(0, 5));
    await waitFor('the request to be in flight', async () => /http_server_requests_in_flight\{service="gateway"\} 1\b/.test(await metricsOf(gateway)), 5000);

    const closing = gateway.close();
    await waitFor('the ops port to report not ready', async () => (await fetch(`${gateway.opsUrl}/readyz`)).status === 503, 5000);
    expect(await (await fetch(`${gateway.opsUrl}/readyz`)).json()).toMatchObject({ status: 'not ready', detail: 'shutting down' });
    await expect(fetch(`${gateway.url}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();

    req.end(body.slice(5));
    const answer = await response;
    expect(answer.status).toBe(201);
    expect(answer.headers['connection']).toBe('close');
    await closing;
    await expect(fetch(`${gateway.opsUrl}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  });

  it('cuts requests still running at the shutdown deadline', async () => {
    const gateway = await suite.startGateway({ ...PRODUCTION, SHUTDOWN_TIMEOUT_MS: '200' });
    const { req, response } = rawRequest(`${gateway.url}/api/v1/companies`, {
      method: 'POST',
      headers: { ...(await auth()), 'content-type': 'application/json', 'content-length': '100' },
    });
    req.write('{"name":');
    await waitFor('the request to be in flight', async () => /http_server_requests_in_flight\{service="gateway"\} 1\b/.test(await metricsOf(gateway)), 5000);
    await gateway.close();
    await expect(response).rejects.toThrow();
  });
});
