import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { z } from 'zod';
import { isRole, type RequestContext } from '../context.ts';
import { DomainError } from '../errors.ts';
import { isUuid } from '../persistence/ids.ts';

/**
 * Internal call tokens (architecture: "Tenancy and identity"): services accept the caller's
 * identity only from a short-lived JWT that the gateway signs with its Ed25519 private key, never
 * from whoever reaches the gRPC port. Compact JWS, header `{ alg: 'EdDSA', typ: 'crm-call+jwt',
 * kid }` (kid = RFC 7638 thumbprint of the public key, so no key ids are configured by hand),
 * claims `iss`, `sub` (user), `org` (organization UUID), `roles`, `rid` (request id), `aud` (the
 * fully-qualified gRPC service called, e.g. `crm.contacts.v1.CompanyService`), `iat`, `exp`.
 */

/** Header `typ` of an internal call token (RFC 8725 §3.11 explicit typing: no other JWT passes). */
export const INTERNAL_TOKEN_TYPE = 'crm-call+jwt';
/** Lifetime of a token, seconds. */
export const INTERNAL_TOKEN_TTL_SECONDS = 60;
/** Accepted clock difference between pods, seconds. */
const CLOCK_TOLERANCE_SECONDS = 5;
/** A cached token is reused only while it has at least this long to live (≫ any call deadline). */
const REUSE_MARGIN_MS = 20_000;

/** An Ed25519 public key that internal tokens are accepted from, with its key id. */
export interface InternalTokenPublicKey {
  /** RFC 7638 JWK thumbprint (base64url SHA-256) of the key. */
  kid: string;
  key: KeyObject;
}

/** The gateway's Ed25519 private key, with the key id of its public half. */
export interface InternalTokenPrivateKey {
  kid: string;
  key: KeyObject;
}

/** RFC 7638 thumbprint of an Ed25519 public key: SHA-256 of `{"crv","kty","x"}` in that order (RFC 8037 §2). */
function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  return createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x }))
    .digest('base64url');
}

function ed25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is ${key.asymmetricKeyType ?? 'not an asymmetric'} key, not Ed25519`);
  return key;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Env values often arrive with `\n` escaped (one-line .env files, CI variables); PEM never holds a backslash. */
const normalise = (text: string): string => text.trim().replaceAll('\\n', '\n');

/** The JWKs of a JSON text: a JWK Set `{ "keys": [...] }`, an array of JWKs or one JWK. */
function jwksOf(text: string): JsonWebKey[] {
  const parsed: unknown = JSON.parse(text);
  const list: unknown[] = Array.isArray(parsed) ? parsed : isRecord(parsed) && Array.isArray(parsed['keys']) ? (parsed['keys'] as unknown[]) : [parsed];
  return list.map((jwk, i) => {
    if (!isRecord(jwk)) throw new Error(`JWK #${i + 1} is not an object`);
    return jwk as JsonWebKey;
  });
}

/**
 * Parses the public keys a service accepts internal tokens from: one or more PEM `PUBLIC KEY`
 * (SPKI) blocks, or JSON (a JWK Set, an array of JWKs or one JWK; a JWK's own `kid` is ignored).
 * Several keys allow rotation. Throws an Error saying what is wrong (no key, not Ed25519, bad
 * PEM/JSON). Duplicates collapse.
 */
export function parseInternalTokenPublicKeys(text: string): InternalTokenPublicKey[] {
  const source = normalise(text);
  let keys: KeyObject[];
  if (source.startsWith('{') || source.startsWith('[')) {
    keys = jwksOf(source).map((jwk, i) => ed25519(createPublicKey({ key: jwk, format: 'jwk' }), `JWK #${i + 1}`));
  } else {
    const blocks = source.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
    keys = blocks.map((pem, i) => ed25519(createPublicKey(pem), `PEM key #${i + 1}`));
  }
  if (keys.length === 0) throw new Error('no key found: expected PEM "PUBLIC KEY" blocks or a JWK Set');
  const byKid = new Map(keys.map((key) => [thumbprint(key), key]));
  return [...byKid].map(([kid, key]) => ({ kid, key }));
}

/**
 * Parses the gateway's signing key: a PEM `PRIVATE KEY` (PKCS#8) block or a private JWK
 * (`{"kty":"OKP","crv":"Ed25519","d":…,"x":…}`). Throws an Error when it is neither or not Ed25519.
 */
export function parseInternalTokenPrivateKey(text: string): InternalTokenPrivateKey {
  const source = normalise(text);
  const key = source.startsWith('{')
    ? createPrivateKey({ key: jwksOf(source)[0] ?? {}, format: 'jwk' })
    : createPrivateKey(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(source)?.[0] ?? source);
  ed25519(key, 'the private key');
  return { kid: thumbprint(createPublicKey(key)), key };
}

/** Signs internal tokens for request contexts. */
export interface InternalTokenSigner {
  /** Key id of the signing key (the thumbprint services look it up by). */
  readonly kid: string;
  /**
   * A token for `ctx` and `audience` (a fully-qualified gRPC service name). Signed once per
   * request context and audience, then reused while at least 20 s of its 60 s remain, so a request
   * making several calls signs once.
   */
  tokenFor(ctx: RequestContext, audience: string): Promise<string>;
}

/**
 * The signer of a process holding the private key (the gateway; tests with a test key). `issuer`
 * names it in `iss` (default `crm-gateway`).
 */
export function createInternalTokenSigner(privateKey: InternalTokenPrivateKey, options: { issuer?: string } = {}): InternalTokenSigner {
  const issuer = options.issuer ?? 'crm-gateway';
  const header: JWTHeaderParameters = { alg: 'EdDSA', typ: INTERNAL_TOKEN_TYPE, kid: privateKey.kid };
  // keyed by the context object: a request's context lives as long as the request
  const cache = new WeakMap<RequestContext, Map<string, { token: Promise<string>; reuseUntil: number }>>();
  return {
    kid: privateKey.kid,
    tokenFor: (ctx, audience) => {
      const now = Date.now();
      const forContext = cache.get(ctx) ?? new Map<string, { token: Promise<string>; reuseUntil: number }>();
      cache.set(ctx, forContext);
      const cached = forContext.get(audience);
      if (cached && cached.reuseUntil > now) return cached.token;
      const iat = Math.floor(now / 1000);
      const exp = iat + INTERNAL_TOKEN_TTL_SECONDS;
      const token = new SignJWT({ org: ctx.organizationId, roles: [...ctx.roles], rid: ctx.requestId })
        .setProtectedHeader(header)
        .setIssuer(issuer)
        .setSubject(ctx.userId)
        .setAudience(audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(privateKey.key);
      forContext.set(audience, { token, reuseUntil: exp * 1000 - REUSE_MARGIN_MS });
      token.catch(() => forContext.delete(audience));
      return token;
    },
  };
}

/** Verifies internal tokens and turns them into request contexts. */
export interface InternalTokenVerifier {
  /**
   * The identity a token carries, for a call to `audience` (the fully-qualified gRPC service
   * called). Rejects with `UNAUTHENTICATED` DomainErrors: `MISSING_CALL_TOKEN` (no token),
   * `INVALID_CALL_TOKEN` (malformed, unknown key, bad signature, expired, issued for another
   * audience, wrong `typ`, missing or malformed claims). Unknown roles are dropped.
   */
  verify(token: string | undefined, audience: string): Promise<RequestContext>;
}

const claimsSchema = z.object({
  sub: z.string().min(1),
  org: z.string().refine(isUuid, 'not a UUID'),
  roles: z.array(z.string()),
  rid: z.string().min(1),
});

function refusal(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim} ${error.reason}`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof errors.JWKSNoMatchingKey) return 'signed by an unknown key';
  if (error instanceof z.ZodError) return `claims ${error.issues.map((i) => i.path.join('.')).join(', ')} invalid`;
  return 'malformed';
}

/**
 * A verifier accepting tokens signed by any of `keys` (several during a key rotation). Checks
 * alg EdDSA, `typ`, `kid`, signature, `aud` = the service called, `exp`/`iat` (5 s clock
 * tolerance; tokens claiming to live longer than 60 s are refused) and the claims' shapes.
 */
export function createInternalTokenVerifier(keys: readonly InternalTokenPublicKey[]): InternalTokenVerifier {
  if (keys.length === 0) throw new Error('an internal-token verifier needs at least one public key');
  const byKid = new Map(keys.map((k) => [k.kid, k.key]));
  const keyFor = (header: JWTHeaderParameters): KeyObject => {
    const key = byKid.get(header.kid ?? '');
    if (!key) throw new errors.JWKSNoMatchingKey();
    return key;
  };
  return {
    verify: async (token, audience) => {
      if (!token) throw new DomainError('unauthenticated', 'MISSING_CALL_TOKEN', 'call carries no internal token (authorization: Bearer …)');
      try {
        const { payload } = await jwtVerify(token, keyFor, {
          algorithms: ['EdDSA'],
          typ: INTERNAL_TOKEN_TYPE,
          audience,
          requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          maxTokenAge: INTERNAL_TOKEN_TTL_SECONDS + CLOCK_TOLERANCE_SECONDS,
        });
        if ((payload.exp ?? 0) - (payload.iat ?? 0) > INTERNAL_TOKEN_TTL_SECONDS)
          throw new errors.JWTClaimValidationFailed('lives too long', payload, 'exp', 'check_failed');
        const claims = claimsSchema.parse(payload);
        return { organizationId: claims.org, userId: claims.sub, roles: claims.roles.filter(isRole), requestId: claims.rid };
      } catch (error) {
        throw new DomainError('unauthenticated', 'INVALID_CALL_TOKEN', `internal token refused: ${refusal(error)}`);
      }
    },
  };
}
