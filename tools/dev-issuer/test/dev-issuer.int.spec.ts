import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createRemoteJWKSet, decodeProtectedHeader, importSPKI, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { loadRealmFile, startDevIssuer, type DevIssuer, type Realm } from '../src/index.ts';

const realmFile = fileURLToPath(new URL('../../../deploy/keycloak/realm-crm.json', import.meta.url));

let issuer: DevIssuer;
let realm: Realm;
let jwks: JWTVerifyGetKey;

beforeAll(async () => {
  realm = await loadRealmFile(realmFile);
  issuer = await startDevIssuer({ realmFile, port: 0 });
  jwks = createRemoteJWKSet(new URL(`${issuer.issuerUrl}/protocol/openid-connect/certs`));
});

afterAll(async () => {
  await issuer.close();
});

function organizationId(alias: string): string {
  const organization = realm.organizations.find((candidate) => candidate.alias === alias);
  if (organization === undefined) throw new Error(`organization ${alias} missing from the realm file`);
  return organization.id;
}

async function token(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function accessToken(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<string> {
  const { status, body } = await token(fields, headers);
  expect(status).toBe(200);
  const value = body['access_token'];
  if (typeof value !== 'string') throw new Error('no access_token in the response');
  return value;
}

const verifyOptions = () => ({ issuer: issuer.issuerUrl, audience: 'crm-gateway', algorithms: ['RS256'] });
const passwordFields = (username: string, password = 'crm-dev') => ({ grant_type: 'password', client_id: 'crm-cli', username, password });

describe('dev issuer over HTTP', () => {
  it('publishes discovery metadata whose issuer is <baseUrl>/realms/crm', async () => {
    expect(issuer.issuerUrl).toBe(`${issuer.baseUrl}/realms/crm`);
    const response = await fetch(`${issuer.issuerUrl}/.well-known/openid-configuration`);
    expect(response.status).toBe(200);
    const discovery = (await response.json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({
      issuer: issuer.issuerUrl,
      token_endpoint: `${issuer.issuerUrl}/protocol/openid-connect/token`,
      jwks_uri: `${issuer.issuerUrl}/protocol/openid-connect/certs`,
      userinfo_endpoint: `${issuer.issuerUrl}/protocol/openid-connect/userinfo`,
      end_session_endpoint: `${issuer.issuerUrl}/protocol/openid-connect/logout`,
      authorization_endpoint: `${issuer.issuerUrl}/protocol/openid-connect/auth`,
      grant_types_supported: ['password', 'client_credentials'],
      id_token_signing_alg_values_supported: ['RS256'],
    });
  });

  it('serves one RS256 signing key', async () => {
    const response = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/certs`);
    const { keys } = (await response.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toEqual({ kid: expect.any(String), kty: 'RSA', alg: 'RS256', use: 'sig', n: expect.any(String), e: 'AQAB' });
  });

  it('issues a password-grant token for admin@acme.test that verifies against the JWKS and carries Keycloak claims', async () => {
    const { status, body } = await token(passwordFields('admin@acme.test'));
    expect(status).toBe(200);
    expect(body).toEqual({
      access_token: expect.any(String),
      expires_in: 300,
      refresh_expires_in: 0,
      token_type: 'Bearer',
      'not-before-policy': 0,
      scope: 'openid profile email organization',
    });
    const { payload, protectedHeader } = await jwtVerify(String(body['access_token']), jwks, verifyOptions());
    expect(protectedHeader).toEqual({ alg: 'RS256', typ: 'JWT', kid: expect.any(String) });
    expect(payload).toMatchObject({
      iss: issuer.issuerUrl,
      typ: 'Bearer',
      azp: 'crm-cli',
      acr: '1',
      preferred_username: 'admin@acme.test',
      email: 'admin@acme.test',
      email_verified: true,
      given_name: 'Ada',
      family_name: 'Admin',
      name: 'Ada Admin',
      sid: expect.any(String),
      organization: { acme: { id: organizationId('acme') } },
    });
    expect(payload.sub).toBe(realm.users.find((user) => user.username === 'admin@acme.test')?.id);
    expect(payload['realm_access']).toEqual({
      roles: expect.arrayContaining(['crm-admin', 'default-roles-crm', 'offline_access', 'uma_authorization']),
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(300);
  });

  it("gives admin@globex.test globex's organization", async () => {
    const { payload } = await jwtVerify(await accessToken(passwordFields('admin@globex.test')), jwks, verifyOptions());
    expect(payload['organization']).toEqual({ globex: { id: organizationId('globex') } });
    expect(payload['realm_access']).toEqual({ roles: expect.arrayContaining(['crm-admin']) });
  });

  it('answers a wrong password with 401 invalid_grant', async () => {
    expect(await token(passwordFields('admin@acme.test', 'wrong'))).toEqual({
      status: 401,
      body: { error: 'invalid_grant', error_description: 'Invalid user credentials' },
    });
  });

  it('issues a client_credentials token to crm-gateway with its secret, in the body or as HTTP Basic', async () => {
    const fromBody = await accessToken({ grant_type: 'client_credentials', client_id: 'crm-gateway', client_secret: 'crm-gateway-dev-secret' });
    const fromBasic = await accessToken(
      { grant_type: 'client_credentials' },
      { authorization: `Basic ${Buffer.from('crm-gateway:crm-gateway-dev-secret').toString('base64')}` },
    );
    const serviceAccount = realm.users.find((user) => user.serviceAccountClientId === 'crm-gateway');
    for (const value of [fromBody, fromBasic]) {
      const { payload } = await jwtVerify(value, jwks, verifyOptions());
      expect(payload).toMatchObject({ azp: 'crm-gateway', sub: serviceAccount?.id, preferred_username: 'service-account-crm-gateway' });
      expect(payload).not.toHaveProperty('sid');
    }
  });

  it('answers a wrong client secret with 401', async () => {
    const { status, body } = await token({ grant_type: 'client_credentials', client_id: 'crm-gateway', client_secret: 'not-it' });
    expect(status).toBe(401);
    expect(body).toEqual({ error: 'unauthorized_client', error_description: 'Invalid client or Invalid client credentials' });
  });

  it('answers an unsupported grant type with 400 unsupported_grant_type', async () => {
    const { status, body } = await token({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'crm-cli' });
    expect(status).toBe(400);
    expect(body['error']).toBe('unsupported_grant_type');
  });

  it('refuses a body that is not form-encoded', async () => {
    const response = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(passwordFields('admin@acme.test')),
    });
    expect(response.status).toBe(415);
  });

  it('publishes the realm public key, which verifies issued tokens (keycloak-connect reads it)', async () => {
    const response = await fetch(issuer.issuerUrl);
    const info = (await response.json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      realm: 'crm',
      'token-service': `${issuer.issuerUrl}/protocol/openid-connect`,
      'account-service': `${issuer.issuerUrl}/account`,
    });
    const key = await importSPKI(`-----BEGIN PUBLIC KEY-----\n${String(info['public_key'])}\n-----END PUBLIC KEY-----`, 'RS256');
    const { payload } = await jwtVerify(await issuer.passwordToken('rep@acme.test'), key, verifyOptions());
    expect(payload['preferred_username']).toBe('rep@acme.test');
  });

  it('mints with passwordToken the same kind of token the endpoint issues, and checks a given password', async () => {
    const { payload } = await jwtVerify(await issuer.passwordToken('viewer@acme.test', 'crm-dev'), jwks, verifyOptions());
    expect(payload).toMatchObject({ azp: 'crm-cli', scope: 'openid profile email organization', organization: { acme: { id: organizationId('acme') } } });
    expect(payload['realm_access']).toEqual({ roles: expect.arrayContaining(['crm-viewer']) });
    await expect(issuer.passwordToken('viewer@acme.test', 'wrong')).rejects.toThrow('Invalid user credentials');
    await expect(issuer.passwordToken('nobody@acme.test')).rejects.toThrow('Invalid user credentials');
  });

  it('signs forged claims with the served key, so verification fails for the forged reason only', async () => {
    const now = Math.floor(Date.now() / 1000);
    const base = { iss: issuer.issuerUrl, aud: 'crm-gateway', sub: 'forged', typ: 'Bearer', iat: now - 600 };
    const expired = await issuer.sign({ ...base, exp: now - 300 });
    await expect(jwtVerify(expired, jwks, verifyOptions())).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
    const wrongIssuer = await issuer.sign({ ...base, iss: 'http://elsewhere/realms/crm', exp: now + 300 });
    await expect(jwtVerify(wrongIssuer, jwks, verifyOptions())).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' });
    const wrongAudience = await issuer.sign({ ...base, aud: 'someone-else', exp: now + 300 });
    await expect(jwtVerify(wrongAudience, jwks, verifyOptions())).rejects.toMatchObject({ claim: 'aud' });
    const valid = await issuer.sign({ ...base, exp: now + 300 });
    await expect(jwtVerify(valid, jwks, verifyOptions())).resolves.toMatchObject({ payload: { sub: 'forged' } });
    expect(decodeProtectedHeader(await issuer.sign({ ...base }, { kid: 'unknown-kid' })).kid).toBe('unknown-kid');
  });

  it('answers userinfo for a valid token and 401 for a forged one', async () => {
    const valid = await issuer.passwordToken('manager@acme.test');
    const ok = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${valid}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ preferred_username: 'manager@acme.test', organization: { acme: { id: organizationId('acme') } } });
    const forged = await issuer.sign({ iss: issuer.issuerUrl, sub: 'x', typ: 'Bearer', exp: 1 });
    const refused = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${forged}` } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('answers 404 outside the realm and 405 for a GET on the token endpoint', async () => {
    expect((await fetch(`${issuer.baseUrl}/realms/other/.well-known/openid-configuration`)).status).toBe(404);
    expect((await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`)).status).toBe(405);
  });
});

describe('issuer options', () => {
  it('builds iss from publicBaseUrl and honours a custom token lifespan', async () => {
    const proxied = await startDevIssuer({ realmFile, port: 0, publicBaseUrl: 'http://keycloak:8080/', accessTokenLifespanSeconds: 60 });
    try {
      expect(proxied.baseUrl).toBe('http://keycloak:8080');
      expect(proxied.issuerUrl).toBe('http://keycloak:8080/realms/crm');
      const local = await fetch(`${proxied.localUrl}/realms/crm/.well-known/openid-configuration`);
      expect(((await local.json()) as { issuer: string }).issuer).toBe('http://keycloak:8080/realms/crm');
      const [, payload] = (await proxied.passwordToken('admin@acme.test')).split('.');
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, number | string>;
      expect(claims['iss']).toBe('http://keycloak:8080/realms/crm');
      expect(Number(claims['exp']) - Number(claims['iat'])).toBe(60);
    } finally {
      await proxied.close();
    }
  });
});

describe('browser clients (CORS)', () => {
  const origin = 'http://127.0.0.1:3000';

  it('answers a preflight for the token endpoint and lets any origin read discovery and tokens', async () => {
    const preflight = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization,content-type');

    const discovery = await fetch(`${issuer.issuerUrl}/.well-known/openid-configuration`, { headers: { origin } });
    expect(discovery.headers.get('access-control-allow-origin')).toBe('*');
    const issued = await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(passwordFields('admin@acme.test')),
    });
    expect(issued.status).toBe(200);
    expect(issued.headers.get('access-control-allow-origin')).toBe('*');
    expect(issued.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('still answers 405 to a plain OPTIONS that is no preflight', async () => {
    expect((await fetch(`${issuer.issuerUrl}/protocol/openid-connect/token`, { method: 'OPTIONS' })).status).toBe(405);
  });
});

describe('key rotation', () => {
  it('signs with the new key and keeps serving the old one, as Keycloak keeps passive keys', async () => {
    const rotating = await startDevIssuer({ realmFile, port: 0 });
    try {
      const before = await rotating.passwordToken('admin@acme.test');
      const oldKid = decodeProtectedHeader(before).kid;
      const newKid = await rotating.rotateKeys();
      expect(newKid).not.toBe(oldKid);
      const after = await rotating.passwordToken('admin@acme.test');
      expect(decodeProtectedHeader(after).kid).toBe(newKid);
      const { keys } = (await (await fetch(`${rotating.issuerUrl}/protocol/openid-connect/certs`)).json()) as { keys: { kid: string }[] };
      expect(keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
      const set = createRemoteJWKSet(new URL(`${rotating.issuerUrl}/protocol/openid-connect/certs`));
      const options = { issuer: rotating.issuerUrl, audience: 'crm-gateway', algorithms: ['RS256'] };
      await expect(jwtVerify(before, set, options)).resolves.toBeDefined();
      await expect(jwtVerify(after, set, options)).resolves.toBeDefined();
      const info = (await (await fetch(rotating.issuerUrl)).json()) as { public_key: string };
      const key = await importSPKI(`-----BEGIN PUBLIC KEY-----\n${info.public_key}\n-----END PUBLIC KEY-----`, 'RS256');
      await expect(jwtVerify(after, key, options)).resolves.toBeDefined();
      const userinfo = await fetch(`${rotating.issuerUrl}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${before}` } });
      expect(userinfo.status).toBe(200);
    } finally {
      await rotating.close();
    }
  });
});
