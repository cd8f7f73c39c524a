import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { problem, sendProblem } from '../http/problem.ts';
import { closeIfBodyUnread } from '../http/request-body.ts';

/**
 * The one module that knows how Keycloak access tokens are checked (swap the library here only).
 *
 * Verification runs on `jose`, not keycloak-connect 26 (deprecated upstream), which cannot do what
 * the production path needs: it converts the JWK to PEM and parses it again on every request (no
 * key cache), fetches the JWKS without a timeout, builds the key URL from the same base as the
 * expected `iss` (no in-cluster key URL beside the public issuer), has no clock skew and no `nbf`
 * or future-`iat` check, accepts a token without `exp` (`NaN < now` is false), coerces claims of
 * the wrong type, parses tokens leniently (plain base64, padding, a fourth part) and verifies with
 * RSA-SHA256 whatever `alg` says. Checks, in order:
 *
 * - strict JWS Compact Serialization (RFC 7515 §7.1): exactly three non-empty base64url parts, no
 *   padding, no whitespace, canonical encoding (no stray trailing bits);
 * - `alg` RS256 only (RFC 8725 §3.1), signature against the realm's JWKS, fetched from
 *   `<keycloakUrl>/realms/<realm>/protocol/openid-connect/certs` with a timeout, kept for
 *   {@link JWKS_MAX_AGE_MS} and re-fetched for an unknown `kid` at most once per cooldown;
 * - `iss` = `<issuerBaseUrl>/realms/<realm>` exactly (RFC 8725 §3.8), `aud` contains the client
 *   id (§3.9);
 * - `exp` required and in the future, `nbf` (if any) and `iat` not in the future, each with
 *   {@link DEFAULT_CLOCK_SKEW_SECONDS} of tolerance (RFC 7519 §4.1.4–4.1.6, OIDC Core §3.1.3.7);
 * - the claims the gateway reads have their Keycloak types ({@link accessTokenClaimsSchema}) and
 *   `typ` is `Bearer` (an ID or refresh token is refused: RFC 8725 §3.11).
 */

/** Tolerated clock difference between Keycloak and the gateway, seconds, for `exp`, `nbf` and `iat`. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;
/** How long a fetched JWKS is used before it is fetched again, ms (Keycloak rotates keys rarely). */
export const JWKS_MAX_AGE_MS = 10 * 60_000;

/** Keycloak 26 organization membership: `{ "<alias>": { "id": "<uuid>", …attributes } }`, or aliases only. */
const organizationClaimSchema = z.union([z.record(z.string(), z.looseObject({ id: z.guid().optional() })), z.array(z.string())]);

/**
 * The access-token claims the gateway relies on, with their Keycloak 26 types. `sub` becomes gRPC
 * metadata (`x-user-id`), hence printable ASCII; other claims pass through unchecked.
 */
export const accessTokenClaimsSchema = z.looseObject({
  iss: z.string(),
  sub: z.string().regex(/^[\x21-\x7e]{1,255}$/, 'sub must be 1 to 255 printable ASCII characters'),
  typ: z.literal('Bearer'),
  /** Seconds since the epoch (NumericDate, RFC 7519 §2). */
  exp: z.number(),
  iat: z.number(),
  nbf: z.number().optional(),
  aud: z.union([z.string(), z.array(z.string())]).optional(),
  azp: z.string().optional(),
  preferred_username: z.string().optional(),
  email: z.string().optional(),
  realm_access: z.looseObject({ roles: z.array(z.string()).optional() }).optional(),
  organization: organizationClaimSchema.optional(),
});

/** The access-token claims the gateway uses (Keycloak 26 shape), as checked by {@link accessTokenClaimsSchema}. */
export interface AccessTokenClaims {
  sub: string;
  iss: string;
  azp?: string | undefined;
  preferred_username?: string | undefined;
  email?: string | undefined;
  realm_access?: { roles?: string[] | undefined } | undefined;
  /** Keycloak 26 organization membership: `{ "<alias>": { "id": "<uuid>" } }`. */
  organization?: Record<string, { id?: string | undefined }> | string[] | undefined;
}

/** Why a token was refused (logged, never sent: the client gets a generic 401). */
export class InvalidTokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidTokenError';
  }
}

/**
 * The realm's keys could not be loaded (Keycloak unreachable, timed out, or a malformed JWKS): the
 * token may well be valid, so this is the gateway's problem (503), not the client's (401).
 */
export class KeysUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeysUnavailableError';
  }
}

export interface TokenVerifier {
  /**
   * Resolves the claims of a valid access token. Rejects with {@link InvalidTokenError} for a token
   * that is not valid, {@link KeysUnavailableError} when the realm's keys cannot be loaded.
   */
  verify(raw: string): Promise<AccessTokenClaims>;
  /** Verification outcomes since start: answered from the cache, verified, refused. */
  readonly stats: { readonly cached: number; readonly verified: number; readonly refused: number };
}

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** Base URL the gateway reaches Keycloak at, without trailing slash (keys; in Kubernetes the in-cluster URL). */
  authServerUrl: string;
  /** Base URL of the expected `iss` (Keycloak's public URL); default `authServerUrl`. */
  issuerBaseUrl?: string;
  realm: string;
  /** The API's audience: tokens must list it in `aud`. */
  clientId: string;
  /** Tolerated clock difference, seconds; default {@link DEFAULT_CLOCK_SKEW_SECONDS}. */
  clockSkewSeconds?: number;
  /**
   * Verified tokens remembered (by SHA-256 of the token) until their `exp`, least recently used
   * dropped first; default 10 000, 0 = no cache. A remembered token is not checked again: a key
   * withdrawn from the JWKS stops tokens it signed only once they expire (Keycloak: 5 min).
   */
  cacheEntries?: number;
  /** Timeout of one JWKS request, ms; default 5000. */
  jwksTimeoutMs?: number;
  /** Least time between two JWKS requests for unknown `kid`s, ms; default 10 000 (keycloak-connect's setting before). */
  jwksCooldownMs?: number;
}

/** Three base64url parts (RFC 7515 §7.1 with RFC 7515 §2 base64url: no padding, no whitespace). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True for a compact JWS whose parts are canonical base64url (re-encoding gives the same text). */
function isCanonicalCompact(raw: string): boolean {
  return raw.split('.').every((part) => part.length % 4 !== 1 && Buffer.from(part, 'base64url').toString('base64url') === part);
}

/** Builds a verifier for `realm` (keys from `authServerUrl`, `iss` under `issuerBaseUrl`) and audience `clientId`. */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const realmPath = `/realms/${encodeURIComponent(options.realm)}`;
  const issuer = `${(options.issuerBaseUrl ?? options.authServerUrl).replace(/\/+$/, '')}${realmPath}`;
  const jwksUrl = new URL(`${options.authServerUrl.replace(/\/+$/, '')}${realmPath}/protocol/openid-connect/certs`);
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const remote = createRemoteJWKSet(jwksUrl, {
    timeoutDuration: options.jwksTimeoutMs ?? 5000,
    cooldownDuration: options.jwksCooldownMs ?? 10_000,
    cacheMaxAge: JWKS_MAX_AGE_MS,
  });
  // jose reports a missing key and a failed fetch alike as errors of the key function: tell them apart
  const keys: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JOSENotSupported)
        throw error;
      throw new KeysUnavailableError(`cannot load the keys of ${jwksUrl.href}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  const entries = options.cacheEntries ?? 10_000;
  const cache = entries > 0 ? new LRUCache<string, AccessTokenClaims>({ max: entries }) : undefined;
  const stats = { cached: 0, verified: 0, refused: 0 };

  const check = async (raw: string): Promise<{ claims: AccessTokenClaims; exp: number }> => {
    if (!isCanonicalCompact(raw)) throw new InvalidTokenError('not a JWS in strict compact serialization');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(raw, keys, {
        algorithms: ['RS256'],
        issuer,
        audience: options.clientId,
        clockTolerance: skew,
        requiredClaims: ['exp', 'iat', 'sub'],
      }));
    } catch (error) {
      if (error instanceof KeysUnavailableError) throw error;
      throw new InvalidTokenError(error instanceof Error ? error.message : String(error), { cause: error });
    }
    const parsed = accessTokenClaimsSchema.safeParse(payload);
    if (!parsed.success) throw new InvalidTokenError(`claims of the wrong type: ${z.prettifyError(parsed.error)}`);
    if (parsed.data.iat > Date.now() / 1000 + skew) throw new InvalidTokenError('"iat" claim is in the future');
    return { claims: parsed.data, exp: parsed.data.exp };
  };

  return {
    stats,
    async verify(raw) {
      if (!COMPACT_JWS.test(raw)) {
        stats.refused++;
        throw new InvalidTokenError('not a JWS in strict compact serialization');
      }
      // the cache is keyed by the token's hash, so a hit is the very string verified before
      const key = cache ? createHash('sha256').update(raw).digest('base64url') : '';
      const hit = cache?.get(key);
      if (hit) {
        stats.cached++;
        return hit;
      }
      try {
        const { claims, exp } = await check(raw);
        stats.verified++;
        const ttl = exp * 1000 - Date.now();
        if (cache && ttl > 0) cache.set(key, claims, { ttl });
        return claims;
      } catch (error) {
        stats.refused++;
        throw error;
      }
    },
  };
}

/**
 * Express middleware: requires `Authorization: Bearer <token>` (RFC 6750 §2.1), verifies it and
 * stores the claims in `res.locals.claims`. Runs before the body is read. Missing → 401
 * problem+json with `WWW-Authenticate: Bearer realm="<realm>"`; invalid → the same with
 * `error="invalid_token"` (RFC 6750 §3.1), `onInvalid` told why; keys unavailable → 503 with
 * `Retry-After`, `onUnavailable` told why. A refusal with a request body still unread closes the
 * connection.
 */
export function authenticate(
  verifier: TokenVerifier,
  realm: string,
  onInvalid: (reason: string) => void,
  onUnavailable: (reason: string) => void = onInvalid,
): RequestHandler {
  return (req, res, next) => {
    const token = /^Bearer +(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    if (!token) {
      closeIfBodyUnread(req, res);
      sendProblem(res, problem(401, 'unauthenticated', 'Authentication required', { detail: 'send an access token as Authorization: Bearer <token>' }), {
        'WWW-Authenticate': `Bearer realm="${realm}"`,
      });
      return;
    }
    verifier.verify(token).then(
      (claims) => {
        res.locals['claims'] = claims;
        next();
      },
      (error: unknown) => {
        closeIfBodyUnread(req, res);
        if (error instanceof KeysUnavailableError) {
          onUnavailable(error.message);
          sendProblem(res, problem(503, 'unavailable', 'Service unavailable', { detail: 'the access token cannot be checked right now' }), {
            'Retry-After': '5',
          });
          return;
        }
        onInvalid(error instanceof Error ? error.message : String(error));
        sendProblem(res, problem(401, 'invalid-token', 'Invalid access token', { detail: 'the access token is invalid or expired' }), {
          'WWW-Authenticate': `Bearer realm="${realm}", error="invalid_token"`,
        });
      },
    );
  };
}
