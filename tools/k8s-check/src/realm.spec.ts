import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { docs, isK8sObject, isRecord, k8sRoot, readJson, repoRoot, type Json } from './source.ts';

/**
 * The Keycloak realm files: the production realm (deploy/keycloak/realm-crm-prod.json, imported by
 * the prod overlay) has no users, no fixed secrets, no password grant on public clients and
 * brute-force protection, and otherwise keeps what the gateway relies on equal to the demo realm
 * (deploy/keycloak/realm-crm.json, served by the dev issuer and imported by the dev overlay).
 */

interface Client {
  clientId: string;
  publicClient?: boolean;
  bearerOnly?: boolean;
  secret?: string;
  directAccessGrantsEnabled?: boolean;
  implicitFlowEnabled?: boolean;
  standardFlowEnabled?: boolean;
  serviceAccountsEnabled?: boolean;
  redirectUris?: string[];
  attributes?: Record<string, string>;
  protocolMappers?: Json[];
}

interface Realm {
  realm: string;
  enabled: boolean;
  sslRequired: string;
  bruteForceProtected?: boolean;
  failureFactor?: number;
  permanentLockout?: boolean;
  registrationAllowed?: boolean;
  users?: unknown[];
  organizations?: { members?: unknown[] }[];
  clients: Client[];
  roles: Json;
  clientScopes: Json[];
  defaultDefaultClientScopes: string[];
  defaultOptionalClientScopes: string[];
  organizationsEnabled: boolean;
  passwordPolicy?: string;
}

const DEV = 'deploy/keycloak/realm-crm.json';
const PROD = 'deploy/keycloak/realm-crm-prod.json';
const dev = readJson<Realm>(DEV);
const prod = readJson<Realm>(PROD);
const client = (realm: Realm, id: string): Client | undefined => realm.clients.find((c) => c.clientId === id);

/** Every key of `value`, at any depth, with its path. */
function keysDeep(value: unknown, path = ''): { path: string; key: string; value: unknown }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => keysDeep(v, `${path}[${i}]`));
  if (!isRecord(value)) return [];
  return Object.entries(value).flatMap(([key, v]) => [{ path: `${path}.${key}`, key, value: v }, ...keysDeep(v, `${path}.${key}`)]);
}

describe('production realm (deploy/keycloak/realm-crm-prod.json)', () => {
  it('is the realm crm, enabled, HTTPS outside private networks', () => {
    expect(prod.realm).toBe('crm');
    expect(prod.enabled).toBe(true);
    expect(['external', 'all']).toContain(prod.sslRequired);
    expect(prod.registrationAllowed).toBe(false);
  });

  it('has no users, no organization members and no credentials', () => {
    expect(prod.users ?? []).toEqual([]);
    for (const organization of prod.organizations ?? []) expect(organization.members ?? []).toEqual([]);
    expect(
      keysDeep(prod).filter((k) => ['credentials', 'users', 'federatedIdentities'].includes(k.key) && !(Array.isArray(k.value) && k.value.length === 0)),
    ).toEqual([]);
    expect(JSON.stringify(prod)).not.toContain('crm-dev');
  });

  it('has no fixed secrets (Keycloak generates the confidential clients’ secrets at import)', () => {
    expect(keysDeep(prod).filter((k) => /secret/i.test(k.key) && typeof k.value === 'string' && k.value !== '')).toEqual([]);
    for (const c of prod.clients) expect({ client: c.clientId, secret: c.secret }).toEqual({ client: c.clientId, secret: undefined });
  });

  it('allows no password grant and no implicit flow on public clients, and PKCE on browser ones', () => {
    for (const c of prod.clients.filter((c) => c.publicClient === true)) {
      expect({ client: c.clientId, passwordGrant: c.directAccessGrantsEnabled === true }).toEqual({ client: c.clientId, passwordGrant: false });
      expect({ client: c.clientId, implicit: c.implicitFlowEnabled === true }).toEqual({ client: c.clientId, implicit: false });
      if (c.standardFlowEnabled === true)
        expect({ client: c.clientId, pkce: c.attributes?.['pkce.code.challenge.method'] }).toEqual({ client: c.clientId, pkce: 'S256' });
    }
    for (const c of prod.clients)
      expect({ client: c.clientId, wildcardRedirect: (c.redirectUris ?? []).includes('*') }).toEqual({ client: c.clientId, wildcardRedirect: false });
  });

  it('protects against brute force (temporary lockout) and has a password policy', () => {
    expect(prod.bruteForceProtected).toBe(true);
    expect(prod.permanentLockout).toBe(false);
    expect(prod.failureFactor).toBeGreaterThan(0);
    expect(prod.passwordPolicy).toMatch(/length\(\d+\)/);
  });

  it('crm-cli logs in with the device authorization grant; crm-gateway is an audience without any flow', () => {
    expect(client(prod, 'crm-cli')?.attributes?.['oauth2.device.authorization.grant.enabled']).toBe('true');
    const gateway = client(prod, 'crm-gateway');
    expect(gateway?.publicClient).toBe(false);
    expect([gateway?.standardFlowEnabled, gateway?.directAccessGrantsEnabled, gateway?.implicitFlowEnabled, gateway?.serviceAccountsEnabled]).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  it('keeps what the gateway relies on equal to the demo realm: roles, client scopes (organization claim), audience mappers', () => {
    expect(prod.roles).toEqual(dev.roles);
    expect(prod.clientScopes).toEqual(dev.clientScopes);
    expect(prod.defaultDefaultClientScopes).toEqual(dev.defaultDefaultClientScopes);
    expect(prod.defaultOptionalClientScopes).toEqual(dev.defaultOptionalClientScopes);
    expect(prod.organizationsEnabled).toBe(true);
    expect(prod.clients.map((c) => c.clientId).sort()).toEqual(dev.clients.map((c) => c.clientId).sort());
    for (const id of ['crm-gateway', 'crm-cli']) expect(client(prod, id)?.protocolMappers).toEqual(client(dev, id)?.protocolMappers);
  });
});

describe('realm imports of the overlays', () => {
  it.each([
    ['dev', DEV],
    ['prod', PROD],
  ])('overlays/%s/realm-import.yaml is the placeholder note or a KeycloakRealmImport of %s', (overlay, source) => {
    const file = join(k8sRoot, 'overlays', overlay, 'realm-import.yaml');
    const imports = docs.filter((d) => d.file === file).map((d) => d.value);
    if (imports.length === 0) {
      expect(readFileSync(file, 'utf8')).toContain('PLACEHOLDER');
      return;
    }
    expect(imports).toHaveLength(1);
    const [realmImport] = imports;
    expect(isK8sObject(realmImport) && realmImport.kind).toBe('KeycloakRealmImport');
    expect(isRecord(realmImport) && isRecord(realmImport['spec']) ? realmImport['spec']['realm'] : undefined).toEqual(readJson(source));
  });

  it('render-realm-import.sh generates the dev overlay’s import from the demo realm and the prod overlay’s from the production realm', () => {
    const work = mkdtempSync(join(tmpdir(), 'realm-import-'));
    try {
      cpSync(join(repoRoot, 'deploy'), join(work, 'deploy'), { recursive: true });
      const result = spawnSync('bash', [join(work, 'deploy/k8s/components/keycloak/render-realm-import.sh')], { encoding: 'utf8' });
      expect(result.status).toBe(0);
      for (const [overlay, source] of [
        ['dev', DEV],
        ['prod', PROD],
      ] as const) {
        const rendered = YAML.parse(readFileSync(join(work, 'deploy/k8s/overlays', overlay, 'realm-import.yaml'), 'utf8')) as {
          kind: string;
          metadata: { name: string };
          spec: { keycloakCRName: string; realm: unknown };
        };
        expect({ overlay, kind: rendered.kind, name: rendered.metadata.name, target: rendered.spec.keycloakCRName }).toEqual({
          overlay,
          kind: 'KeycloakRealmImport',
          name: 'crm-realm',
          target: 'keycloak',
        });
        expect(rendered.spec.realm).toEqual(readJson(source));
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
