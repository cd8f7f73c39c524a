import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { loadRealmFile, type Realm } from './realm-file.ts';
import { OAuthError, processTokenRequest, serviceAccountUser, type TokenContext } from './token-grants.ts';

const realmFile = fileURLToPath(new URL('../../../deploy/keycloak/realm-crm.json', import.meta.url));

let realm: Realm;
beforeAll(async () => {
  realm = await loadRealmFile(realmFile);
});

function context(from: Realm = realm): TokenContext {
  let counter = 0;
  return {
    realm: from,
    issuer: 'http://issuer.test/realms/crm',
    lifespanSeconds: 120,
    now: () => 1_700_000_000_500,
    newId: () => `id-${++counter}`,
  };
}

function request(fields: Record<string, string>, authorization?: string) {
  return { form: new URLSearchParams(fields), authorization, clientAddress: '192.0.2.1' };
}

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** Runs the request and returns the OAuth error it must raise. */
function refusal(fields: Record<string, string>, authorization?: string, from: Realm = realm): OAuthError {
  try {
    processTokenRequest(context(from), request(fields, authorization));
  } catch (error) {
    if (error instanceof OAuthError) return error;
    throw error;
  }
  throw new Error('the request was accepted');
}

const password = { grant_type: 'password', client_id: 'crm-cli', username: 'manager@acme.test', password: 'crm-dev' };

describe('password grant', () => {
  it('issues a token for crm-cli with timing from the context', () => {
    const issued = processTokenRequest(context(), request(password));
    expect(issued.expiresIn).toBe(120);
    expect(issued.scope).toBe('openid profile email organization');
    expect(issued.claims).toMatchObject({
      iat: 1_700_000_000,
      exp: 1_700_000_120,
      jti: 'id-2',
      sid: 'id-1',
      sub: '14f23b86-29e3-4e80-868f-9fca539291c1',
      azp: 'crm-cli',
      realm_access: { roles: expect.arrayContaining(['crm-manager']) },
    });
  });

  it('matches the username case-insensitively', () => {
    const issued = processTokenRequest(context(), request({ ...password, username: 'Manager@ACME.test' }));
    expect(issued.claims['preferred_username']).toBe('manager@acme.test');
  });

  it('keeps an explicit scope parameter: no openid unless asked for', () => {
    expect(processTokenRequest(context(), request({ ...password, scope: 'email' })).scope).toBe('profile email organization');
  });

  it('refuses a wrong password, an unknown user and a missing password alike', () => {
    for (const fields of [
      { ...password, password: 'nope' },
      { ...password, username: 'ghost@acme.test' },
      { ...password, password: '' },
    ]) {
      expect(refusal(fields).toJSON()).toEqual({ error: 'invalid_grant', error_description: 'Invalid user credentials' });
      expect(refusal(fields).status).toBe(401);
    }
  });

  it('refuses service accounts, which have no password', () => {
    expect(refusal({ ...password, username: 'service-account-crm-gateway', password: '' }).error).toBe('invalid_grant');
  });

  it('refuses clients without direct access grants (crm-gateway is not meant for user logins)', () => {
    const error = refusal({ ...password, client_id: 'crm-gateway', client_secret: 'crm-gateway-dev-secret' });
    expect([error.status, error.error, error.description]).toEqual([400, 'unauthorized_client', 'Client not allowed for direct access grants']);
  });

  it('refuses disabled users and users with pending required actions', () => {
    const changed: Realm = {
      ...realm,
      users: realm.users.map((user) => {
        if (user.username === 'rep@acme.test') return { ...user, enabled: false };
        if (user.username === 'viewer@acme.test') return { ...user, requiredActions: ['UPDATE_PASSWORD'] };
        return user;
      }),
    };
    expect(refusal({ ...password, username: 'rep@acme.test' }, undefined, changed).toJSON()).toEqual({
      error: 'invalid_grant',
      error_description: 'Account disabled',
    });
    expect(refusal({ ...password, username: 'viewer@acme.test' }, undefined, changed).description).toBe('Account is not fully set up');
  });

  it('refuses scopes the client does not have', () => {
    const error = refusal({ ...password, scope: 'openid crm:all' });
    expect([error.status, error.error, error.description]).toEqual([400, 'invalid_scope', 'Invalid scopes: openid crm:all']);
  });
});

describe('client_credentials grant', () => {
  it('authenticates with the secret in the body', () => {
    const issued = processTokenRequest(
      context(),
      request({ grant_type: 'client_credentials', client_id: 'crm-gateway', client_secret: 'crm-gateway-dev-secret' }),
    );
    expect(issued.claims).toMatchObject({ azp: 'crm-gateway', aud: 'crm-gateway', clientAddress: '192.0.2.1' });
  });

  it('authenticates with HTTP Basic, which wins over the body', () => {
    const issued = processTokenRequest(
      context(),
      request({ grant_type: 'client_credentials', client_id: 'crm-cli' }, basic('crm-gateway', 'crm-gateway-dev-secret')),
    );
    expect(issued.claims['sub']).toBe('88dfc6d8-62c8-4d35-836c-1f80a86f8c8a');
  });

  it('refuses a wrong or missing secret with 401 unauthorized_client', () => {
    for (const [fields, authorization] of [
      [{ grant_type: 'client_credentials', client_id: 'crm-gateway', client_secret: 'wrong' }, undefined],
      [{ grant_type: 'client_credentials', client_id: 'crm-gateway' }, undefined],
      [{ grant_type: 'client_credentials' }, basic('crm-gateway', 'wrong')],
    ] as const) {
      const error = refusal(fields, authorization);
      expect([error.status, error.error]).toEqual([401, 'unauthorized_client']);
    }
  });

  it('refuses public clients', () => {
    const error = refusal({ grant_type: 'client_credentials', client_id: 'crm-cli' });
    expect([error.status, error.error, error.description]).toEqual([400, 'unauthorized_client', 'Public client not allowed to retrieve service account']);
  });

  it('derives a stable service-account id when the export does not declare the user', () => {
    const gateway = realm.clients.find((client) => client.clientId === 'crm-gateway');
    if (gateway === undefined) throw new Error('crm-gateway missing');
    const withoutUser: Realm = { ...realm, users: realm.users.filter((user) => user.serviceAccountClientId === undefined) };
    const first = serviceAccountUser(withoutUser, gateway);
    expect(first.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(serviceAccountUser(withoutUser, gateway).id).toBe(first.id);
    expect(first.username).toBe('service-account-crm-gateway');
  });
});

describe('request validation', () => {
  it('answers a missing grant type with invalid_request and an unknown one with unsupported_grant_type', () => {
    expect(refusal({ client_id: 'crm-cli' }).toJSON()).toEqual({
      error: 'invalid_request',
      error_description: 'Missing form parameter: grant_type',
    });
    const error = refusal({ grant_type: 'authorization_code', client_id: 'crm-cli', code: 'x' });
    expect([error.status, error.error]).toEqual([400, 'unsupported_grant_type']);
  });

  it('refuses unknown clients and a missing client_id', () => {
    const unknown = refusal({ ...password, client_id: 'crm-nope' });
    expect([unknown.status, unknown.error]).toEqual([401, 'invalid_client']);
    const { client_id: _omitted, ...withoutClient } = password;
    const missing = refusal(withoutClient);
    expect([missing.status, missing.error]).toEqual([400, 'invalid_client']);
  });

  it('refuses duplicated parameters', () => {
    const form = new URLSearchParams(password);
    form.append('username', 'admin@acme.test');
    expect(() => processTokenRequest(context(), { form, authorization: undefined, clientAddress: '' })).toThrow(
      new OAuthError(400, 'invalid_request', 'duplicated parameter'),
    );
  });
});
