import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { buildUserInfoClaims, resolveClientScopes } from './access-token-claims.ts';
import { loadRealmFile, type Realm } from './realm-file.ts';
import { OAuthError, passwordGrant, processTokenRequest, SUPPORTED_GRANT_TYPES, type TokenContext } from './token-grants.ts';

/** Options of {@link startDevIssuer}. */
export interface DevIssuerOptions {
  /** Path of the Keycloak realm export (the single source of users, roles, clients, organizations). */
  realmFile: string;
  /** Interface to listen on; default `127.0.0.1`. */
  host?: string;
  /** TCP port; default 8080, 0 picks a free one. */
  port?: number;
  /**
   * Base URL clients reach the issuer at (no trailing slash, e.g. `http://keycloak:8080`) when it
   * differs from the listening address, as behind Docker or a proxy; `iss` is built from it.
   */
  publicBaseUrl?: string;
  /** Access-token lifespan in seconds; default the realm's `accessTokenLifespan`, else 300. */
  accessTokenLifespanSeconds?: number;
}

/** A running dev issuer. */
export interface DevIssuer {
  /** Base URL without trailing slash, e.g. `http://127.0.0.1:43117`. */
  baseUrl: string;
  /** `baseUrl + '/realms/<realm>'`: the exact `iss` of every token. */
  issuerUrl: string;
  /**
   * Where the issuer listens, e.g. `http://127.0.0.1:43117`: `baseUrl` unless `publicBaseUrl` is
   * set, as a Kubernetes Service URL differs from Keycloak's public one.
   */
  localUrl: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
  /**
   * Signs arbitrary claims with the issuer's key, unchanged (nothing is added), so tests can forge
   * expired, wrong-issuer or wrong-audience tokens. Header defaults: `alg` RS256, `kid` the served key's.
   * @throws from jose when `alg` does not suit an RSA key.
   */
  sign(claims: Record<string, unknown>, header?: { kid?: string; alg?: string }): Promise<string>;
  /**
   * Rotates the signing key as Keycloak does when a new RSA key gets the highest priority: a new
   * RS256 key pair signs from now on, the JWKS lists it first and keeps the previous keys (passive:
   * tokens they signed still verify), the realm document publishes the new public key.
   * @returns the new key's `kid`.
   */
  rotateKeys(): Promise<string>;
  /**
   * The access token the token endpoint issues for a password grant by `crm-cli`.
   * @param password checked when given; omitted, the user is trusted.
   * @throws OAuthError for an unknown user, a wrong password, or a user who may not log in.
   */
  passwordToken(username: string, password?: string): Promise<string>;
}

/** Client whose tokens `passwordToken` mints: the public CLI client of the CRM realm. */
export const PASSWORD_TOKEN_CLIENT_ID = 'crm-cli';

const MAX_BODY_BYTES = 64 * 1024;

/** An RS256 signing key: the private half, and the public half as served in the JWKS. */
interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
  spkiBase64: string;
}

async function newSigningKey(): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const spkiBase64 = (await exportSPKI(publicKey)).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return { kid, privateKey, jwk: { kid, kty: jwk.kty, alg: 'RS256', use: 'sig', n: jwk.n, e: jwk.e }, spkiBase64 };
}

/**
 * Starts a Keycloak-compatible development OpenID issuer for the realm in `options.realmFile`.
 * Serves under `<baseUrl>/realms/<realm>`: the realm info document, OpenID discovery, JWKS, the token
 * endpoint (password and client_credentials grants), userinfo, and a no-op logout. A fresh RS256
 * key pair is generated on every start. Every answer allows cross-origin reads
 * (`Access-Control-Allow-Origin: *`, preflights answered), so browser tools such as the API docs'
 * Swagger UI can discover the issuer and fetch tokens; no cookies are involved, so no credentials
 * are allowed.
 * @throws RealmFileError for an unusable realm file; listen errors (e.g. EADDRINUSE) reject too.
 */
export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const realm = await loadRealmFile(options.realmFile);
  let active = await newSigningKey();
  const jwks: { keys: JWK[] } = { keys: [active.jwk] };

  const host = options.host ?? '127.0.0.1';
  // Routes depend on the bound port, so they are filled in after listen(); a request that slips in
  // before that gets a 503 rather than hanging.
  let routes: Routes | undefined;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (corsPreflight(req, res)) return;
    if (routes === undefined) {
      req.resume();
      sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'Starting' });
      return;
    }
    handle(routes, req, res).catch((error: unknown) => {
      process.stderr.write(`dev-issuer: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: 'Unexpected error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const localUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const baseUrl = (options.publicBaseUrl ?? localUrl).replace(/\/+$/, '');
  const realmPath = `/realms/${encodeURIComponent(realm.name)}`;
  const issuerUrl = `${baseUrl}${realmPath}`;
  const context: TokenContext = {
    realm,
    issuer: issuerUrl,
    lifespanSeconds: options.accessTokenLifespanSeconds ?? realm.accessTokenLifespan ?? 300,
    now: () => Date.now(),
    newId: () => randomUUID(),
  };
  const sign = (claims: Record<string, unknown>, header?: { kid?: string; alg?: string }): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: header?.alg ?? 'RS256', typ: 'JWT', kid: header?.kid ?? active.kid }).sign(active.privateKey);

  routes = {
    realmName: realm.name,
    realmPath,
    basePath: new URL(baseUrl).pathname.replace(/\/+$/, ''),
    realmInfo: {
      realm: realm.name,
      public_key: active.spkiBase64,
      'token-service': `${issuerUrl}/protocol/openid-connect`,
      'account-service': `${issuerUrl}/account`,
      'tokens-not-before': 0,
    },
    discovery: discoveryDocument(issuerUrl, realm),
    jwks,
    token: async (form, authorization, clientAddress) => {
      const issued = processTokenRequest(context, { form, authorization, clientAddress });
      return {
        access_token: await sign(issued.claims),
        expires_in: issued.expiresIn,
        refresh_expires_in: 0,
        token_type: 'Bearer',
        'not-before-policy': 0,
        scope: issued.scope,
      };
    },
    userinfo: async (token) => userInfo(realm, issuerUrl, createLocalJWKSet(jwks), token),
  };
  return {
    baseUrl,
    issuerUrl,
    localUrl,
    close: () => closeServer(server),
    sign,
    rotateKeys: async () => {
      active = await newSigningKey();
      jwks.keys.unshift(active.jwk);
      if (routes) routes.realmInfo['public_key'] = active.spkiBase64;
      return active.kid;
    },
    passwordToken: async (username, password) => {
      const client = realm.clients.find((candidate) => candidate.clientId === PASSWORD_TOKEN_CLIENT_ID);
      if (client === undefined) throw new OAuthError(401, 'invalid_client', 'Invalid client or Invalid client credentials');
      return sign(passwordGrant(context, client, username, password, null).claims);
    },
  };
}

interface Routes {
  realmName: string;
  realmPath: string;
  /** Path part of the public base URL, so a proxy may forward with or without it. */
  basePath: string;
  realmInfo: Record<string, unknown>;
  discovery: Record<string, unknown>;
  jwks: { keys: JWK[] };
  token(form: URLSearchParams, authorization: string | undefined, clientAddress: string): Promise<Record<string, unknown>>;
  userinfo(token: string | undefined): Promise<Record<string, unknown>>;
}

async function handle(routes: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let path = new URL(req.url ?? '/', 'http://dev-issuer').pathname.replace(/\/+$/, '');
  if (routes.basePath !== '' && path.startsWith(`${routes.basePath}/`)) path = path.slice(routes.basePath.length);
  if (path !== routes.realmPath && !path.startsWith(`${routes.realmPath}/`)) {
    sendJson(res, 404, { error: 'Realm does not exist' });
    return;
  }
  const endpoint = path.slice(routes.realmPath.length);
  const method = req.method ?? 'GET';
  const readOnly = method === 'GET' || method === 'HEAD';
  switch (endpoint) {
    case '':
      if (readOnly) return sendJson(res, 200, routes.realmInfo);
      break;
    case '/.well-known/openid-configuration':
      if (readOnly) return sendJson(res, 200, routes.discovery);
      break;
    case '/protocol/openid-connect/certs':
      if (readOnly) return sendJson(res, 200, routes.jwks, 'application/jwk-set+json');
      break;
    case '/protocol/openid-connect/token':
      if (method === 'POST') return tokenEndpoint(routes, req, res);
      break;
    case '/protocol/openid-connect/userinfo':
      if (readOnly || method === 'POST') return userInfoEndpoint(routes, req, res);
      break;
    case '/protocol/openid-connect/logout':
      // No sessions or refresh tokens exist here, so there is nothing to end.
      res.writeHead(204, { 'cache-control': 'no-store' }).end();
      return;
    case '/protocol/openid-connect/auth':
      return sendJson(res, 400, {
        error: 'unsupported_response_type',
        error_description: `The dev issuer has no browser login; use grant_type ${SUPPORTED_GRANT_TYPES.join(' or ')}`,
      });
    default:
      return sendJson(res, 404, { error: 'Unable to find matching target resource method' });
  }
  sendJson(res, 405, { error: 'HTTP 405 Method Not Allowed' });
}

async function tokenEndpoint(routes: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/x-www-form-urlencoded') {
    req.resume();
    return sendJson(res, 415, { error: 'invalid_request', error_description: 'Content-Type must be application/x-www-form-urlencoded' });
  }
  const body = await readBody(req);
  if (body === undefined) return sendJson(res, 413, { error: 'invalid_request', error_description: 'Request body too large' });
  try {
    const response = await routes.token(new URLSearchParams(body), req.headers.authorization, req.socket.remoteAddress ?? '');
    sendJson(res, 200, response);
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    sendJson(res, error.status, error.toJSON());
  }
}

async function userInfoEndpoint(routes: Routes, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const header = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization?.trim() ?? '')?.[1];
  let token = header;
  if (token === undefined && req.method === 'POST') {
    const body = await readBody(req);
    token = body === undefined ? undefined : (new URLSearchParams(body).get('access_token') ?? undefined);
  } else {
    req.resume();
  }
  try {
    sendJson(res, 200, await routes.userinfo(token));
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    res.setHeader('www-authenticate', `Bearer realm="${routes.realmName}", error="${error.error}", error_description="${error.description}"`);
    sendJson(res, error.status, error.toJSON());
  }
}

async function userInfo(realm: Realm, issuer: string, keys: ReturnType<typeof createLocalJWKSet>, token: string | undefined): Promise<Record<string, unknown>> {
  if (token === undefined) throw new OAuthError(401, 'invalid_request', 'Token not provided');
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys, { issuer, algorithms: ['RS256'], typ: 'JWT' }));
  } catch {
    throw new OAuthError(401, 'invalid_token', 'Token verification failed');
  }
  const user = realm.users.find((candidate) => candidate.id === payload.sub);
  const client = realm.clients.find((candidate) => candidate.clientId === payload['azp']);
  if (payload['typ'] !== 'Bearer' || user === undefined || client === undefined) {
    throw new OAuthError(401, 'invalid_token', 'Token verification failed');
  }
  const requested = typeof payload['scope'] === 'string' ? payload['scope'].split(' ') : [];
  // Keycloak's userinfo endpoint only answers tokens granted the openid scope.
  if (!requested.includes('openid')) throw new OAuthError(403, 'insufficient_scope', 'Missing openid scope');
  const { scopes, openid } = resolveClientScopes(realm, client, requested);
  return buildUserInfoClaims({
    realm,
    client,
    user,
    issuer,
    issuedAt: payload.iat ?? 0,
    lifespanSeconds: 0,
    jti: payload.jti ?? '',
    sessionId: typeof payload['sid'] === 'string' ? payload['sid'] : undefined,
    scopes,
    openid,
    sessionNotes: {},
  });
}

/** Discovery metadata in Keycloak's shape, advertising only what the dev issuer actually implements. */
function discoveryDocument(issuer: string, realm: Realm): Record<string, unknown> {
  const oidc = `${issuer}/protocol/openid-connect`;
  const scopes = [...realm.clientScopes.values()]
    .filter((scope) => scope.protocol === 'openid-connect' && scope.attributes['include.in.openid.provider.metadata'] !== 'false')
    .map((scope) => scope.name);
  return {
    issuer,
    authorization_endpoint: `${oidc}/auth`,
    token_endpoint: `${oidc}/token`,
    userinfo_endpoint: `${oidc}/userinfo`,
    end_session_endpoint: `${oidc}/logout`,
    jwks_uri: `${oidc}/certs`,
    grant_types_supported: [...SUPPORTED_GRANT_TYPES],
    response_types_supported: ['none'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    userinfo_signing_alg_values_supported: ['none'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    claims_supported: [
      'aud',
      'sub',
      'iss',
      'auth_time',
      'name',
      'given_name',
      'family_name',
      'preferred_username',
      'email',
      'email_verified',
      'acr',
      'azp',
      'realm_access',
      'organization',
    ],
    claims_parameter_supported: false,
    scopes_supported: ['openid', ...scopes],
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    frontchannel_logout_supported: false,
    backchannel_logout_supported: false,
  };
}

/** Reads a request body up to {@link MAX_BODY_BYTES}; undefined when it is larger. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Drains an oversized body instead of breaking out: leaving the loop would destroy the socket
  // before the 413 answer could be written.
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size <= MAX_BODY_BYTES) chunks.push(buffer);
  }
  return size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8');
}

/**
 * CORS (Fetch standard §3.2): every answer may be read by any origin, credentials not included;
 * a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 here, allowing
 * GET and POST with the headers it asks for (`Authorization` for client credentials, `Content-Type`).
 * @returns true when the request was a preflight and is answered.
 */
function corsPreflight(req: IncomingMessage, res: ServerResponse): boolean {
  res.setHeader('access-control-allow-origin', '*');
  res.setHeader('access-control-expose-headers', 'WWW-Authenticate');
  if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
  req.resume();
  res
    .writeHead(204, {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? 'Authorization, Content-Type',
      'access-control-max-age': '3600',
      vary: 'Access-Control-Request-Headers',
    })
    .end();
  return true;
}

function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      pragma: 'no-cache',
    })
    .end(res.req.method === 'HEAD' ? undefined : text);
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((error) => (error === undefined ? resolve() : reject(error)));
    // Keep-alive sockets (fetch keeps them) would hold close() open until they time out.
    server.closeAllConnections();
  });
}
