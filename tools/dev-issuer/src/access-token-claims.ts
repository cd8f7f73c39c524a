import type { ClientScope, Organization, ProtocolMapper, Realm, RealmClient, RealmUser } from './realm-file.ts';

/** Name of Keycloak's built-in organization client scope, which the organization mappers key on. */
export const ORGANIZATION_SCOPE = 'organization';

/** Everything needed to compute the claims of one token; no I/O, no clock, no randomness. */
export interface ClaimsInput {
  realm: Realm;
  /** The client the token is issued to (`azp`). */
  client: RealmClient;
  /** The subject: a person, or the client's service-account user. */
  user: RealmUser;
  /** Exact `iss` value: `<baseUrl>/realms/<realm>`. */
  issuer: string;
  /** Issue time in seconds since the Unix epoch. */
  issuedAt: number;
  /** Access-token lifespan in seconds (`exp - iat`). */
  lifespanSeconds: number;
  jti: string;
  /** User-session id put in `sid`; Keycloak leaves it out of service-account tokens. */
  sessionId: string | undefined;
  /** Client scopes in effect, from {@link resolveClientScopes}. */
  scopes: readonly ClientScope[];
  /** Whether `openid` was requested; it only shows in the `scope` claim. */
  openid: boolean;
  /** User-session notes read by `oidc-usersessionmodel-note-mapper` (Keycloak sets `client_id`, `clientHost`, `clientAddress` for service accounts). */
  sessionNotes: Readonly<Record<string, string>>;
}

/** Result of matching a requested `scope` parameter against a client's scopes. */
export interface ScopeResolution {
  /** Default client scopes followed by the requested optional ones, in that order. */
  scopes: ClientScope[];
  openid: boolean;
  /** Requested scope names the client does not have; Keycloak answers `invalid_scope` for them. */
  invalid: string[];
}

/**
 * Resolves the client scopes of a token request like Keycloak does: every default client scope of
 * the client, plus the optional ones named in the space-separated `scope` parameter.
 */
export function resolveClientScopes(realm: Realm, client: RealmClient, requested: readonly string[]): ScopeResolution {
  const byName = (name: string): ClientScope | undefined => {
    const scope = realm.clientScopes.get(name);
    return scope !== undefined && scope.protocol === 'openid-connect' ? scope : undefined;
  };
  const scopes: ClientScope[] = [];
  for (const name of client.defaultClientScopes) {
    const scope = byName(name);
    if (scope !== undefined) scopes.push(scope);
  }
  const invalid: string[] = [];
  let openid = false;
  for (const name of requested) {
    if (name === 'openid') {
      openid = true;
      continue;
    }
    if (scopes.some((scope) => scope.name === name)) continue;
    const optional = client.optionalClientScopes.includes(name) ? byName(name) : undefined;
    if (optional === undefined) invalid.push(name);
    else scopes.push(optional);
  }
  return { scopes, openid, invalid };
}

/** The `scope` claim: `openid` when requested, then every scope whose `include.in.token.scope` is not `"false"`. */
export function scopeClaim(openid: boolean, scopes: readonly ClientScope[]): string {
  const names = scopes.filter((scope) => scope.attributes['include.in.token.scope'] !== 'false').map((scope) => scope.name);
  return (openid ? ['openid', ...names] : names).join(' ');
}

/**
 * A user's effective realm roles: the directly assigned ones first, then every role they imply
 * through realm-role composites (depth-first, each name once).
 */
export function effectiveRealmRoles(realm: Realm, user: RealmUser): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const composite of realm.roles.get(name)?.composites ?? []) visit(composite);
  };
  const direct = new Set(user.realmRoles);
  for (const name of user.realmRoles) visit(name);
  return [...user.realmRoles, ...[...seen].filter((name) => !direct.has(name))];
}

/** Enabled organizations the user is a member of (membership is by username, case-insensitive). */
export function userOrganizations(realm: Realm, user: RealmUser): Organization[] {
  const username = user.username.toLowerCase();
  return realm.organizations.filter((organization) => organization.enabled && organization.members.includes(username));
}

/**
 * Claims of a Keycloak 26 access token, computed from the protocol mappers of the client and of
 * its client scopes (only the mapper types a CRM token uses are interpreted; others are ignored).
 * Keycloak serialises a single audience as a string, so `aud` is a string or an array.
 */
export function buildAccessTokenClaims(input: ClaimsInput): Record<string, unknown> {
  const mapped: Record<string, unknown> = {};
  const audiences: string[] = [];
  for (const mapper of mappersOf(input)) {
    if (mapper.config['access.token.claim'] !== 'true') continue;
    if (mapper.protocolMapper === 'oidc-audience-mapper') {
      for (const key of ['included.client.audience', 'included.custom.audience']) {
        const audience = mapper.config[key];
        if (audience !== undefined && audience !== '' && !audiences.includes(audience)) audiences.push(audience);
      }
    } else {
      applyMapper(mapped, mapper, input);
    }
  }
  const { acr, realm_access: realmAccess, ...rest } = mapped;
  return {
    exp: input.issuedAt + input.lifespanSeconds,
    iat: input.issuedAt,
    jti: input.jti,
    iss: input.issuer,
    ...(audiences.length === 0 ? {} : { aud: audiences.length === 1 ? audiences[0] : audiences }),
    sub: input.user.id,
    typ: 'Bearer',
    azp: input.client.clientId,
    ...(input.sessionId === undefined ? {} : { sid: input.sessionId }),
    ...(acr === undefined ? {} : { acr }),
    ...(realmAccess === undefined ? {} : { realm_access: realmAccess }),
    scope: scopeClaim(input.openid, input.scopes),
    ...rest,
  };
}

/** Claims of the userinfo response: `sub` plus every mapper flagged `userinfo.token.claim`. */
export function buildUserInfoClaims(input: ClaimsInput): Record<string, unknown> {
  const mapped: Record<string, unknown> = { sub: input.user.id };
  for (const mapper of mappersOf(input)) {
    if (mapper.config['userinfo.token.claim'] === 'true' && mapper.protocolMapper !== 'oidc-audience-mapper') {
      applyMapper(mapped, mapper, input);
    }
  }
  return mapped;
}

function mappersOf(input: ClaimsInput): ProtocolMapper[] {
  return [...input.client.protocolMappers, ...input.scopes.flatMap((scope) => scope.protocolMappers)];
}

function applyMapper(claims: Record<string, unknown>, mapper: ProtocolMapper, input: ClaimsInput): void {
  const { config } = mapper;
  const claimName = config['claim.name'];
  switch (mapper.protocolMapper) {
    case 'oidc-sub-mapper':
      claims['sub'] = input.user.id;
      return;
    case 'oidc-acr-mapper':
      // "1": the user authenticated in this very request (no SSO cookie reuse in the dev issuer).
      claims['acr'] = '1';
      return;
    case 'oidc-full-name-mapper': {
      const name = [input.user.firstName, input.user.lastName].filter((part) => part !== undefined && part !== '').join(' ');
      if (name !== '') claims['name'] = name;
      return;
    }
    case 'oidc-usermodel-realm-role-mapper':
      if (claimName !== undefined) setClaim(claims, claimName, effectiveRealmRoles(input.realm, input.user));
      return;
    case 'oidc-usermodel-attribute-mapper':
    case 'oidc-usermodel-property-mapper': {
      const values = userValues(input.user, config['user.attribute'] ?? '');
      if (claimName === undefined || values.length === 0) return;
      const converted = values.map((value) => convert(value, config['jsonType.label']));
      setClaim(claims, claimName, config['multivalued'] === 'true' ? converted : converted[0]);
      return;
    }
    case 'oidc-usersessionmodel-note-mapper': {
      const value = input.sessionNotes[config['user.session.note'] ?? ''];
      if (claimName !== undefined && value !== undefined) setClaim(claims, claimName, convert(value, config['jsonType.label']));
      return;
    }
    case 'oidc-organization-membership-mapper': {
      const value = organizationClaimValue(config, grantedOrganizations(input));
      if (value !== undefined) setClaim(claims, claimName ?? 'organization', value);
      return;
    }
    default:
      return;
  }
}

/**
 * Organizations a token may name. Keycloak's membership mapper only acts when the `organization`
 * scope is in effect, and that bare scope ("any organization") resolves to the user's organization
 * only when there is exactly one: a member of several gets no claim without an interactive choice.
 */
function grantedOrganizations(input: ClaimsInput): Organization[] {
  if (!input.realm.organizationsEnabled || !input.scopes.some((scope) => scope.name === ORGANIZATION_SCOPE)) return [];
  const organizations = userOrganizations(input.realm, input.user);
  return organizations.length === 1 ? organizations : [];
}

/**
 * Value of the organization claim for a membership-mapper configuration, following Keycloak's
 * effective model: `multivalued` (default true) off → the first alias; `addOrganizationId` or
 * `addOrganizationAttributes` force the JSON form `{ <alias>: { id?, ...attributes } }`; otherwise
 * `jsonType.label` JSON gives that form and String (the default) an array of aliases.
 * @returns undefined when there is no organization to put in the claim.
 */
export function organizationClaimValue(config: Readonly<Record<string, string>>, organizations: readonly Organization[]): unknown {
  const first = organizations[0];
  if (first === undefined) return undefined;
  if ((config['multivalued'] ?? 'true') !== 'true') return first.alias;
  const addId = config['addOrganizationId'] === 'true';
  const addAttributes = config['addOrganizationAttributes'] === 'true';
  if (!addId && !addAttributes && (config['jsonType.label'] ?? 'String') !== 'JSON') {
    return organizations.map((organization) => organization.alias);
  }
  return Object.fromEntries(
    organizations.map((organization) => [organization.alias, { ...(addId ? { id: organization.id } : {}), ...(addAttributes ? organization.attributes : {}) }]),
  );
}

function userValues(user: RealmUser, attribute: string): string[] {
  const single = (value: string | undefined): string[] => (value === undefined || value === '' ? [] : [value]);
  switch (attribute) {
    case 'username':
      return single(user.username.toLowerCase());
    case 'email':
      return single(user.email);
    case 'firstName':
      return single(user.firstName);
    case 'lastName':
      return single(user.lastName);
    case 'emailVerified':
      return [String(user.emailVerified)];
    default:
      return [...(user.attributes[attribute] ?? [])];
  }
}

function convert(value: string, jsonType: string | undefined): unknown {
  switch (jsonType) {
    case 'boolean':
      return value === 'true';
    case 'long':
    case 'int': {
      const number = Number(value);
      return Number.isFinite(number) ? number : value;
    }
    case 'JSON':
      try {
        const parsed: unknown = JSON.parse(value);
        return parsed;
      } catch {
        return value;
      }
    default:
      return value;
  }
}

/** Sets a possibly nested claim: Keycloak splits claim names on dots that are not escaped as `\.`. */
function setClaim(claims: Record<string, unknown>, claimName: string, value: unknown): void {
  const segments = claimName.split(/(?<!\\)\./).map((segment) => segment.replaceAll('\\.', '.'));
  const last = segments.pop();
  if (last === undefined || last === '') return;
  let target = claims;
  for (const segment of segments) {
    const next = target[segment];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      target = next as Record<string, unknown>;
    } else {
      const created: Record<string, unknown> = {};
      target[segment] = created;
      target = created;
    }
  }
  target[last] = value;
}
