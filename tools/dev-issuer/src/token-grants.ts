import { createHash, timingSafeEqual } from 'node:crypto';
import { buildAccessTokenClaims, resolveClientScopes, scopeClaim } from './access-token-claims.ts';
import type { Realm, RealmClient, RealmUser } from './realm-file.ts';

/**
 * A token-endpoint failure, shaped like Keycloak's: HTTP `status` plus the JSON body
 * `{ "error": <error>, "error_description": <description> }`.
 */
export class OAuthError extends Error {
  readonly status: number;
  readonly error: string;
  readonly description: string;

  constructor(status: number, error: string, description: string) {
    super(`${error}: ${description}`);
    this.name = 'OAuthError';
    this.status = status;
    this.error = error;
    this.description = description;
  }

  /** The response body Keycloak sends for this error. */
  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** What the grant logic needs from its surroundings; `now` and `newId` are injectable for tests. */
export interface TokenContext {
  realm: Realm;
  /** Exact `iss` value. */
  issuer: string;
  /** Access-token lifespan in seconds. */
  lifespanSeconds: number;
  /** Current time in milliseconds since the Unix epoch. */
  now(): number;
  /** A fresh unique id (UUID), used for `jti` and `sid`. */
  newId(): string;
}

/** One request to the token endpoint, already decoded from `application/x-www-form-urlencoded`. */
export interface TokenRequest {
  form: URLSearchParams;
  /** Raw `Authorization` header, if any (HTTP Basic client authentication). */
  authorization: string | undefined;
  /** Caller's IP address; Keycloak copies it into service-account tokens (`clientAddress`, `clientHost`). */
  clientAddress: string;
}

/** Claims to sign plus the fields of the token response that depend on them. */
export interface IssuedToken {
  claims: Record<string, unknown>;
  /** The `scope` response field (equal to the `scope` claim). */
  scope: string;
  /** Seconds until `exp`. */
  expiresIn: number;
}

/** Grant types the dev issuer implements; anything else is `unsupported_grant_type`. */
export const SUPPORTED_GRANT_TYPES = ['password', 'client_credentials'] as const;

/**
 * Runs a token request through Keycloak's checks in Keycloak's order (grant type, client
 * authentication, grant-specific rules) and returns the claims of the access token to issue.
 * @throws OAuthError with Keycloak's status, error code and description on every refusal.
 */
export function processTokenRequest(context: TokenContext, request: TokenRequest): IssuedToken {
  const { form } = request;
  const grantType = form.get('grant_type');
  if (grantType === null || grantType === '') {
    throw new OAuthError(400, 'invalid_request', 'Missing form parameter: grant_type');
  }
  if (!(SUPPORTED_GRANT_TYPES as readonly string[]).includes(grantType)) {
    throw new OAuthError(400, 'unsupported_grant_type', 'Unsupported grant_type');
  }
  const client = authenticateClient(context.realm, form, request.authorization);
  if (new Set(form.keys()).size !== [...form.keys()].length) {
    throw new OAuthError(400, 'invalid_request', 'duplicated parameter');
  }
  if (grantType === 'password') {
    const scope = form.get('scope');
    return passwordGrant(context, client, form.get('username') ?? '', form.get('password'), scope);
  }
  return clientCredentialsGrant(context, client, form.get('scope'), request.clientAddress);
}

/**
 * The resource-owner password grant for an already authenticated client.
 * @param password the password to check; `undefined` skips the check (in-process callers only).
 * @param scopeParameter raw `scope` parameter; when absent the dev issuer assumes `openid`, as every
 *   OIDC client sends it, so the `scope` claim reads `openid profile email organization`.
 * @throws OAuthError as Keycloak would answer (`unauthorized_client`, `invalid_grant`, `invalid_scope`).
 */
export function passwordGrant(
  context: TokenContext,
  client: RealmClient,
  username: string,
  password: string | null | undefined,
  scopeParameter: string | null,
): IssuedToken {
  if (!client.directAccessGrantsEnabled) {
    throw new OAuthError(400, 'unauthorized_client', 'Client not allowed for direct access grants');
  }
  const user = findUser(context.realm, username);
  const credential = password === undefined ? undefined : user?.passwords.find((item) => sameSecret(item.value, password ?? ''));
  if (user === undefined || (password !== undefined && credential === undefined)) {
    throw new OAuthError(401, 'invalid_grant', 'Invalid user credentials');
  }
  if (!user.enabled) throw new OAuthError(400, 'invalid_grant', 'Account disabled');
  if (user.requiredActions.length > 0 || credential?.temporary === true) {
    throw new OAuthError(400, 'invalid_grant', 'Account is not fully set up');
  }
  return issue(context, client, user, scopeParameter ?? 'openid', context.newId(), {});
}

function clientCredentialsGrant(context: TokenContext, client: RealmClient, scopeParameter: string | null, clientAddress: string): IssuedToken {
  if (client.publicClient) {
    throw new OAuthError(400, 'unauthorized_client', 'Public client not allowed to retrieve service account');
  }
  if (!client.serviceAccountsEnabled) {
    throw new OAuthError(400, 'unauthorized_client', 'Client not enabled to retrieve service account');
  }
  const user = serviceAccountUser(context.realm, client);
  const notes = { client_id: client.clientId, clientHost: clientAddress, clientAddress };
  return issue(context, client, user, scopeParameter ?? '', undefined, notes);
}

function issue(
  context: TokenContext,
  client: RealmClient,
  user: RealmUser,
  scopeParameter: string,
  sessionId: string | undefined,
  sessionNotes: Record<string, string>,
): IssuedToken {
  const requested = scopeParameter.split(' ').filter((name) => name !== '');
  const { scopes, openid, invalid } = resolveClientScopes(context.realm, client, requested);
  if (invalid.length > 0) throw new OAuthError(400, 'invalid_scope', `Invalid scopes: ${scopeParameter}`);
  const claims = buildAccessTokenClaims({
    realm: context.realm,
    client,
    user,
    issuer: context.issuer,
    issuedAt: Math.floor(context.now() / 1000),
    lifespanSeconds: context.lifespanSeconds,
    jti: context.newId(),
    sessionId,
    scopes,
    openid,
    sessionNotes,
  });
  return { claims, scope: scopeClaim(openid, scopes), expiresIn: context.lifespanSeconds };
}

/**
 * Authenticates the client of a token request: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and
 * secret) wins over `client_id` / `client_secret` in the body; public clients need no secret.
 * @throws OAuthError `invalid_client` (unknown or disabled client, 400 when `client_id` is missing)
 *   or `unauthorized_client` (missing or wrong secret), 401 as Keycloak answers.
 */
export function authenticateClient(realm: Realm, form: URLSearchParams, authorization: string | undefined): RealmClient {
  const basic = parseBasicAuthorization(authorization);
  const clientId = basic?.clientId ?? form.get('client_id');
  const secret = basic?.secret ?? form.get('client_secret');
  if (clientId === null || clientId === '') throw new OAuthError(400, 'invalid_client', 'Missing client_id parameter');
  const client = realm.clients.find((candidate) => candidate.clientId === clientId);
  if (client === undefined || !client.enabled) {
    throw new OAuthError(401, 'invalid_client', 'Invalid client or Invalid client credentials');
  }
  if (client.publicClient) return client;
  if (secret === null || client.secret === undefined || !sameSecret(client.secret, secret)) {
    throw new OAuthError(401, 'unauthorized_client', 'Invalid client or Invalid client credentials');
  }
  return client;
}

/** Finds a login-capable user by username, or by e-mail when the realm allows it; case-insensitive. */
export function findUser(realm: Realm, login: string): RealmUser | undefined {
  const wanted = login.toLowerCase();
  if (wanted === '') return undefined;
  const people = realm.users.filter((user) => user.serviceAccountClientId === undefined);
  return (
    people.find((user) => user.username.toLowerCase() === wanted) ??
    (realm.loginWithEmailAllowed ? people.find((user) => user.email?.toLowerCase() === wanted) : undefined)
  );
}

/**
 * The service-account user of a client. Keycloak creates one on import when the export lacks it;
 * the dev issuer then derives a stable id from the realm and client names so `sub` survives restarts.
 */
export function serviceAccountUser(realm: Realm, client: RealmClient): RealmUser {
  const declared = realm.users.find((user) => user.serviceAccountClientId === client.clientId);
  if (declared !== undefined) return declared;
  const hex = createHash('sha256').update(`${realm.name}/${client.clientId}`).digest('hex');
  return {
    id: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`,
    username: `service-account-${client.clientId}`,
    email: undefined,
    firstName: undefined,
    lastName: undefined,
    emailVerified: false,
    enabled: true,
    passwords: [],
    requiredActions: [],
    realmRoles: [realm.defaultRoleName],
    attributes: {},
    serviceAccountClientId: client.clientId,
  };
}

function parseBasicAuthorization(header: string | undefined): { clientId: string; secret: string } | undefined {
  const match = header === undefined ? null : /^Basic\s+(\S+)$/i.exec(header.trim());
  if (match === null || match[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { clientId: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
}

function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return value;
  }
}

/** Compares secrets in constant time; hashing first makes the lengths equal. */
function sameSecret(expected: string, actual: string): boolean {
  const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(actual));
}
