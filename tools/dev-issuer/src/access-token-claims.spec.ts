import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import {
  buildAccessTokenClaims,
  buildUserInfoClaims,
  effectiveRealmRoles,
  organizationClaimValue,
  resolveClientScopes,
  type ClaimsInput,
} from './access-token-claims.ts';
import { loadRealmFile, parseRealm, type Organization, type Realm, type RealmClient, type RealmUser } from './realm-file.ts';

const realmFile = fileURLToPath(new URL('../../../deploy/keycloak/realm-crm.json', import.meta.url));
const ISSUER = 'http://issuer.test/realms/crm';

let realm: Realm;
beforeAll(async () => {
  realm = await loadRealmFile(realmFile);
});

function client(clientId: string, from: Realm = realm): RealmClient {
  const found = from.clients.find((candidate) => candidate.clientId === clientId);
  if (found === undefined) throw new Error(`no client ${clientId}`);
  return found;
}

function user(username: string, from: Realm = realm): RealmUser {
  const found = from.users.find((candidate) => candidate.username === username);
  if (found === undefined) throw new Error(`no user ${username}`);
  return found;
}

function input(clientId: string, username: string, overrides: Partial<ClaimsInput> = {}, from: Realm = realm): ClaimsInput {
  const theClient = client(clientId, from);
  const { scopes, openid } = resolveClientScopes(from, theClient, ['openid']);
  return {
    realm: from,
    client: theClient,
    user: user(username, from),
    issuer: ISSUER,
    issuedAt: 1_700_000_000,
    lifespanSeconds: 300,
    jti: 'jti-1',
    sessionId: 'sid-1',
    scopes,
    openid,
    sessionNotes: {},
    ...overrides,
  };
}

describe('buildAccessTokenClaims', () => {
  it('builds the Keycloak 26 claim set of a crm-cli password-grant token', () => {
    expect(buildAccessTokenClaims(input('crm-cli', 'admin@acme.test'))).toEqual({
      exp: 1_700_000_300,
      iat: 1_700_000_000,
      jti: 'jti-1',
      iss: ISSUER,
      aud: 'crm-gateway',
      sub: '4bbbee32-4651-4ad6-bd3c-bc9094a18134',
      typ: 'Bearer',
      azp: 'crm-cli',
      sid: 'sid-1',
      acr: '1',
      realm_access: { roles: ['default-roles-crm', 'crm-admin', 'offline_access', 'uma_authorization'] },
      scope: 'openid profile email organization',
      email_verified: true,
      name: 'Ada Admin',
      preferred_username: 'admin@acme.test',
      given_name: 'Ada',
      family_name: 'Admin',
      email: 'admin@acme.test',
      organization: { acme: { id: 'e0aabe42-39a1-4fa4-b228-9a0a1c3412de' } },
    });
  });

  it("puts globex's id in a globex admin's token", () => {
    expect(buildAccessTokenClaims(input('crm-cli', 'admin@globex.test'))['organization']).toEqual({
      globex: { id: 'bdfcc24b-1f0a-4fdc-9709-90502a2a86c8' },
    });
  });

  it('gives a crm-gateway service account its audience, session notes and no organization or sid', () => {
    const gateway = client('crm-gateway');
    const { scopes, openid } = resolveClientScopes(realm, gateway, []);
    const claims = buildAccessTokenClaims(
      input('crm-gateway', 'service-account-crm-gateway', {
        scopes,
        openid,
        sessionId: undefined,
        sessionNotes: { client_id: 'crm-gateway', clientHost: '10.0.0.7', clientAddress: '10.0.0.7' },
      }),
    );
    expect(claims).toMatchObject({
      aud: 'crm-gateway',
      sub: '88dfc6d8-62c8-4d35-836c-1f80a86f8c8a',
      azp: 'crm-gateway',
      scope: 'profile email',
      client_id: 'crm-gateway',
      clientAddress: '10.0.0.7',
      preferred_username: 'service-account-crm-gateway',
      realm_access: { roles: ['default-roles-crm', 'offline_access', 'uma_authorization'] },
    });
    expect(claims).not.toHaveProperty('sid');
    expect(claims).not.toHaveProperty('organization');
    expect(claims).not.toHaveProperty('name');
  });

  it('serialises several audiences as an array, in mapper order', () => {
    const custom = parseRealm({
      realm: 'r',
      clients: [
        {
          clientId: 'app',
          protocolMappers: [
            { protocolMapper: 'oidc-audience-mapper', config: { 'included.client.audience': 'one', 'access.token.claim': 'true' } },
            { protocolMapper: 'oidc-audience-mapper', config: { 'included.custom.audience': 'two', 'access.token.claim': 'true' } },
            { protocolMapper: 'oidc-audience-mapper', config: { 'included.client.audience': 'id-only', 'access.token.claim': 'false' } },
          ],
        },
      ],
      users: [{ id: 'u1', username: 'someone', enabled: true }],
    });
    expect(buildAccessTokenClaims(input('app', 'someone', {}, custom))['aud']).toEqual(['one', 'two']);
  });

  it('leaves the organization out when the organization scope is not in effect', () => {
    const cli = client('crm-cli');
    const withoutOrganization = { ...cli, defaultClientScopes: cli.defaultClientScopes.filter((name) => name !== 'organization') };
    const { scopes } = resolveClientScopes(realm, withoutOrganization, []);
    const claims = buildAccessTokenClaims(input('crm-cli', 'admin@acme.test', { client: withoutOrganization, scopes }));
    expect(claims).not.toHaveProperty('organization');
    expect(claims['scope']).toBe('openid profile email');
  });

  it('leaves the organization out when organizations are disabled in the realm', () => {
    const disabled: Realm = { ...realm, organizationsEnabled: false };
    expect(buildAccessTokenClaims(input('crm-cli', 'admin@acme.test', { realm: disabled }))).not.toHaveProperty('organization');
  });

  it('leaves the organization out for a member of two organizations, as the bare organization scope does', () => {
    const both: Realm = {
      ...realm,
      organizations: realm.organizations.map((organization) =>
        organization.alias === 'globex' ? { ...organization, members: [...organization.members, 'admin@acme.test'] } : organization,
      ),
    };
    expect(buildAccessTokenClaims(input('crm-cli', 'admin@acme.test', { realm: both }))).not.toHaveProperty('organization');
  });
});

describe('organizationClaimValue', () => {
  const acme: Organization = {
    id: 'id-acme',
    name: 'acme',
    alias: 'acme',
    enabled: true,
    domains: ['acme.test'],
    attributes: { tier: ['gold'] },
    members: [],
  };

  it('follows the mapper configuration like Keycloak', () => {
    expect(organizationClaimValue({}, [acme])).toEqual(['acme']);
    expect(organizationClaimValue({ 'jsonType.label': 'JSON' }, [acme])).toEqual({ acme: {} });
    expect(organizationClaimValue({ addOrganizationId: 'true' }, [acme])).toEqual({ acme: { id: 'id-acme' } });
    expect(organizationClaimValue({ addOrganizationAttributes: 'true' }, [acme])).toEqual({ acme: { tier: ['gold'] } });
    expect(organizationClaimValue({ multivalued: 'false', addOrganizationId: 'true' }, [acme])).toBe('acme');
    expect(organizationClaimValue({ addOrganizationId: 'true' }, [])).toBeUndefined();
  });
});

describe('effectiveRealmRoles', () => {
  it('expands nested composites once each, after the directly assigned roles', () => {
    const nested = parseRealm({
      realm: 'r',
      roles: {
        realm: [
          { name: 'a', composites: { realm: ['b', 'c'] } },
          { name: 'b', composites: { realm: ['c', 'd'] } },
          { name: 'd', composites: { realm: ['a'] } },
        ],
      },
      users: [{ id: 'u1', username: 'someone', realmRoles: ['x', 'a'] }],
    });
    expect(effectiveRealmRoles(nested, user('someone', nested))).toEqual(['x', 'a', 'b', 'c', 'd']);
  });
});

describe('resolveClientScopes', () => {
  it('adds requested optional scopes and reports unknown ones', () => {
    const resolution = resolveClientScopes(realm, client('crm-cli'), ['openid', 'phone', 'email', 'crm:everything']);
    expect(resolution.openid).toBe(true);
    expect(resolution.scopes.map((scope) => scope.name)).toEqual(['web-origins', 'acr', 'profile', 'roles', 'basic', 'email', 'organization', 'phone']);
    expect(resolution.invalid).toEqual(['crm:everything']);
  });
});

describe('buildUserInfoClaims', () => {
  it('returns the subject and the userinfo claims, without token bookkeeping', () => {
    const claims = buildUserInfoClaims(input('crm-cli', 'rep@acme.test'));
    expect(claims).toMatchObject({
      sub: '93ca4b42-4f73-40cc-b278-280418dd55c8',
      preferred_username: 'rep@acme.test',
      email: 'rep@acme.test',
      organization: { acme: { id: 'e0aabe42-39a1-4fa4-b228-9a0a1c3412de' } },
    });
    expect(claims).not.toHaveProperty('exp');
    expect(claims).not.toHaveProperty('aud');
    expect(claims).not.toHaveProperty('realm_access');
  });
});
