import type { RequestHandler } from 'express';
import Keycloak from 'keycloak-connect';
// keycloak-connect's own token parser; the adapter exposes no public constructor for it
import Token from 'keycloak-connect/middleware/auth-utils/token.js';
import { sendProblem, problem } from '../http/problem.ts';

/**
 * The one module that knows keycloak-connect (deprecated upstream; swap it here only).
 * Verifies Keycloak access tokens: RS256 signature against the realm's JWKS (keycloak-connect
 * re-fetches keys at most every 10 s), `exp`, `typ: Bearer`, `iss` = `<authServerUrl>/realms/<realm>`
 * exactly, and `aud` containing `clientId`.
 */

/** The access-token claims the gateway uses (Keycloak 26 shape). */
export interface AccessTokenClaims {
  sub: string;
  iss: string;
  azp?: string;
  preferred_username?: string;
  email?: string;
  realm_access?: { roles?: string[] };
  /** Keycloak 26 organization membership: `{ "<alias>": { "id": "<uuid>" } }`. */
  organization?: Record<string, { id?: string }> | string[];
}

interface ParsedToken {
  header?: { alg?: string };
  content: AccessTokenClaims & { typ?: string; exp?: number };
}

interface GrantManagerLike {
  validateToken(token: ParsedToken, expectedType: string): Promise<ParsedToken>;
}

/** Why a token was refused (logged, never sent: the client gets a generic 401). */
export class InvalidTokenError extends Error {}

export interface TokenVerifier {
  /** Resolves the claims of a valid token; rejects with {@link InvalidTokenError}. */
  verify(raw: string): Promise<AccessTokenClaims>;
}

/** Builds a verifier for `realm` at `authServerUrl` (no trailing slash) and audience `clientId`. */
export function createTokenVerifier(options: { authServerUrl: string; realm: string; clientId: string }): TokenVerifier {
  const keycloak = new Keycloak({}, {
    realm: options.realm,
    'auth-server-url': options.authServerUrl,
    'ssl-required': 'external',
    resource: options.clientId,
    'bearer-only': true,
    'verify-token-audience': true,
    'confidential-port': 0,
    'min-time-between-jwks-requests': 10,
  } as unknown as Keycloak.KeycloakConfig);
  const grantManager = (keycloak as unknown as { grantManager: GrantManagerLike }).grantManager;
  return {
    async verify(raw) {
      const token = new Token(raw, options.clientId) as ParsedToken;
      // keycloak-connect verifies with RSA-SHA256 whatever the header says; refuse any other alg outright
      if (token.header?.alg !== 'RS256') throw new InvalidTokenError(`unsupported alg ${String(token.header?.alg)}`);
      try {
        const valid = await grantManager.validateToken(token, 'Bearer');
        return valid.content;
      } catch (err) {
        throw new InvalidTokenError(err instanceof Error ? err.message : String(err));
      }
    },
  };
}

/**
 * Express middleware: requires `Authorization: Bearer <token>`, verifies it and stores the claims
 * in `res.locals.claims`. Missing or invalid → 401 problem+json with
 * `WWW-Authenticate: Bearer realm="<realm>"` (keycloak-connect's own middleware would answer 403).
 */
export function authenticate(verifier: TokenVerifier, realm: string, onInvalid: (reason: string) => void): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+([A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.?[A-Za-z0-9\-_.+/=]*)$/i.exec(header);
    if (!match?.[1]) {
      sendProblem(res, problem(401, 'unauthenticated', 'Authentication required', { detail: 'send an access token as Authorization: Bearer <token>' }), {
        'WWW-Authenticate': `Bearer realm="${realm}"`,
      });
      return;
    }
    verifier.verify(match[1]).then(
      (claims) => {
        res.locals['claims'] = claims;
        next();
      },
      (err: unknown) => {
        onInvalid(err instanceof Error ? err.message : String(err));
        sendProblem(res, problem(401, 'invalid-token', 'Invalid access token', { detail: 'the access token is invalid or expired' }), {
          'WWW-Authenticate': `Bearer realm="${realm}", error="invalid_token"`,
        });
      },
    );
  };
}
