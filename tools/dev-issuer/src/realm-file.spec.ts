import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { loadRealmFile, parseRealm, RealmFileError, type Realm } from './realm-file.ts';

const realmFile = fileURLToPath(new URL('../../../deploy/keycloak/realm-crm.json', import.meta.url));

const ACME_ID = 'e0aabe42-39a1-4fa4-b228-9a0a1c3412de';
const GLOBEX_ID = 'bdfcc24b-1f0a-4fdc-9709-90502a2a86c8';

describe('the CRM realm export', () => {
  let realm: Realm;

  beforeAll(async () => {
    realm = await loadRealmFile(realmFile);
  });

  it('describes realm crm with organizations enabled and a 300 s token lifespan', () => {
    expect(realm.name).toBe('crm');
    expect(realm.organizationsEnabled).toBe(true);
    expect(realm.accessTokenLifespan).toBe(300);
    expect(realm.defaultRoleName).toBe('default-roles-crm');
  });

  it('defines the four CRM roles with descriptions, and the default role composites', () => {
    for (const name of ['crm-admin', 'crm-manager', 'crm-rep', 'crm-viewer']) {
      expect(realm.roles.get(name)?.description).toMatch(/^CRM /);
    }
    expect(realm.roles.get('default-roles-crm')?.composites).toEqual(['offline_access', 'uma_authorization']);
  });

  it('has the organizations with fixed ids, alias = name, and their domains', () => {
    expect(realm.organizations.map(({ id, name, alias, domains }) => ({ id, name, alias, domains }))).toEqual([
      { id: ACME_ID, name: 'acme', alias: 'acme', domains: ['acme.test'] },
      { id: GLOBEX_ID, name: 'globex', alias: 'globex', domains: ['globex.test'] },
    ]);
  });

  it('makes every person a verified, enabled member of the organization of their e-mail domain, with password crm-dev', () => {
    const people = realm.users.filter((user) => user.serviceAccountClientId === undefined);
    expect(people.map((user) => user.username).sort()).toEqual([
      'admin@acme.test',
      'admin@globex.test',
      'manager@acme.test',
      'rep@acme.test',
      'viewer@acme.test',
    ]);
    for (const user of people) {
      expect(user.email).toBe(user.username);
      expect(user.emailVerified).toBe(true);
      expect(user.enabled).toBe(true);
      expect(user.firstName).toEqual(expect.any(String));
      expect(user.lastName).toEqual(expect.any(String));
      expect(user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(user.passwords).toEqual([{ value: 'crm-dev', temporary: false }]);
      const domain = user.username.split('@')[1];
      const memberOf = realm.organizations.filter((organization) => organization.members.includes(user.username));
      expect(memberOf.map((organization) => organization.domains)).toEqual([[domain]]);
    }
  });

  it('gives each person exactly one CRM role as documented', () => {
    const crmRoles = Object.fromEntries(
      realm.users
        .filter((user) => user.serviceAccountClientId === undefined)
        .map((user) => [user.username, user.realmRoles.filter((role) => role.startsWith('crm-'))]),
    );
    expect(crmRoles).toEqual({
      'admin@acme.test': ['crm-admin'],
      'manager@acme.test': ['crm-manager'],
      'rep@acme.test': ['crm-rep'],
      'viewer@acme.test': ['crm-viewer'],
      'admin@globex.test': ['crm-admin'],
    });
  });

  it('declares crm-gateway confidential with a service account and no user flows, crm-cli public with direct grants', () => {
    const gateway = realm.clients.find((client) => client.clientId === 'crm-gateway');
    expect(gateway).toMatchObject({
      publicClient: false,
      secret: 'crm-gateway-dev-secret',
      serviceAccountsEnabled: true,
      directAccessGrantsEnabled: false,
    });
    expect(realm.users.find((user) => user.serviceAccountClientId === 'crm-gateway')?.username).toBe('service-account-crm-gateway');
    const cli = realm.clients.find((client) => client.clientId === 'crm-cli');
    expect(cli).toMatchObject({ publicClient: true, directAccessGrantsEnabled: true, serviceAccountsEnabled: false });
    expect(cli?.protocolMappers).toContainEqual(
      expect.objectContaining({
        protocolMapper: 'oidc-audience-mapper',
        config: expect.objectContaining({ 'included.client.audience': 'crm-gateway', 'access.token.claim': 'true' }),
      }),
    );
    expect(cli?.defaultClientScopes).toContain('organization');
  });

  it('configures the organization scope mapper for a JSON claim carrying the organization id', () => {
    const mapper = realm.clientScopes.get('organization')?.protocolMappers[0];
    expect(mapper?.protocolMapper).toBe('oidc-organization-membership-mapper');
    expect(mapper?.config).toMatchObject({
      'claim.name': 'organization',
      'jsonType.label': 'JSON',
      multivalued: 'true',
      addOrganizationId: 'true',
      'access.token.claim': 'true',
    });
  });

  it('declares every client scope its clients and realm defaults reference (Keycloak skips unknown ones silently)', async () => {
    const raw = JSON.parse(await readFile(realmFile, 'utf8')) as {
      defaultDefaultClientScopes: string[];
      defaultOptionalClientScopes: string[];
    };
    const referenced = [
      ...raw.defaultDefaultClientScopes,
      ...raw.defaultOptionalClientScopes,
      ...realm.clients.flatMap((client) => [...client.defaultClientScopes, ...client.optionalClientScopes]),
    ];
    expect(referenced.filter((name) => !realm.clientScopes.has(name))).toEqual([]);
    for (const name of ['basic', 'roles', 'profile', 'email', 'acr', 'web-origins', 'service_account']) {
      expect(realm.clientScopes.has(name)).toBe(true);
    }
  });

  it('keeps account client roles out of default-roles-crm, so real tokens carry only the crm-gateway audience', async () => {
    const raw = JSON.parse(await readFile(realmFile, 'utf8')) as { roles: { realm: { name: string; composites?: unknown }[] } };
    const defaultRole = raw.roles.realm.find((role) => role.name === 'default-roles-crm');
    expect(defaultRole?.composites).toEqual({ realm: ['offline_access', 'uma_authorization'] });
    expect(realm.clients.map((client) => client.clientId)).toEqual(expect.arrayContaining(['account', 'account-console']));
  });

  it('carries the fields Keycloak needs to import organizations: members by username, domains by name', async () => {
    const raw: unknown = JSON.parse(await readFile(realmFile, 'utf8'));
    expect(raw).toMatchObject({
      organizationsEnabled: true,
      organizations: [
        { alias: 'acme', domains: [{ name: 'acme.test' }], members: expect.arrayContaining([{ username: 'admin@acme.test', membershipType: 'UNMANAGED' }]) },
        { alias: 'globex', domains: [{ name: 'globex.test' }], members: [{ username: 'admin@globex.test', membershipType: 'UNMANAGED' }] },
      ],
    });
  });
});

describe('parseRealm', () => {
  it('applies Keycloak import defaults to absent fields', () => {
    const realm = parseRealm({
      realm: 'Demo',
      users: [{ id: 'u1', username: 'someone' }],
      clients: [{ clientId: 'app' }],
      organizations: [{ id: 'o1', name: 'org' }],
    });
    expect(realm.defaultRoleName).toBe('default-roles-demo');
    expect(realm.organizationsEnabled).toBe(false);
    expect(realm.loginWithEmailAllowed).toBe(true);
    expect(realm.users[0]).toMatchObject({ enabled: false, emailVerified: false, passwords: [], realmRoles: [] });
    expect(realm.clients[0]).toMatchObject({ enabled: true, publicClient: false, directAccessGrantsEnabled: false });
    expect(realm.organizations[0]).toMatchObject({ alias: 'org', enabled: true, members: [] });
  });

  it('keeps only plain-text password credentials', () => {
    const realm = parseRealm({
      realm: 'r',
      users: [
        {
          id: 'u1',
          username: 'a',
          credentials: [
            { type: 'password', value: 'one', temporary: true },
            { type: 'password', secretData: '{"value":"hash"}', credentialData: '{}' },
            { type: 'otp', value: '123456' },
          ],
        },
      ],
    });
    expect(realm.users[0]?.passwords).toEqual([{ value: 'one', temporary: true }]);
  });

  it('names the offending field when the export is malformed', () => {
    expect(() => parseRealm({})).toThrow(new RealmFileError('$.realm', 'expected a non-empty string'));
    expect(() => parseRealm({ realm: 'r', users: [{ id: 'u1' }] })).toThrow('$.users[0].username: expected a non-empty string');
    expect(() => parseRealm({ realm: 'r', clients: [{ clientId: 'c', publicClient: 'yes' }] })).toThrow('$.clients[0].publicClient: expected a boolean');
    expect(() => parseRealm([])).toThrow(RealmFileError);
  });
});
