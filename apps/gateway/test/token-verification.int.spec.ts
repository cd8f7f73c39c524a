import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startDevIssuer, type DevIssuer } from '@crm/dev-issuer';
import { REALM_FILE, organizationId, waitFor } from '@crm/testing';
import { createTokenVerifier, InvalidTokenError, KeysUnavailableError, type TokenVerifierOptions } from '../src/auth/keycloak.auth.ts';
import { closedUrl, startCountingProxy, startSilentServer } from './support/http-stubs.ts';

/**
 * The gateway's access-token checks (RFC 8725, OIDC Core) against the real development issuer:
 * every token below is signed with the issuer's own key, so each refusal is about the one thing
 * that was changed. The issuer is reached through a counting proxy, which shows when keys are
 * fetched.
 */

const CERTS = '/realms/crm/protocol/openid-connect/certs';
let issuer: DevIssuer;
let proxy: Awaited<ReturnType<typeof startCountingProxy>>;
let good: string;
let claims: Record<string, unknown>;

const verifierFor = (options: Partial<TokenVerifierOptions> = {}) =>
  createTokenVerifier({ authServerUrl: proxy.url, issuerBaseUrl: issuer.baseUrl, realm: 'crm', clientId: 'crm-gateway', ...options });
const now = (): number => Math.floor(Date.now() / 1000);
const payloadOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

beforeAll(async () => {
  issuer = await startDevIssuer({ realmFile: REALM_FILE, port: 0 });
  proxy = await startCountingProxy(issuer.localUrl);
  good = await issuer.passwordToken('admin@acme.test');
  claims = payloadOf(good);
});

afterAll(async () => {
  await proxy?.close();
  await issuer?.close();
});

describe('a valid access token', () => {
  it('yields its claims', async () => {
    const verified = await verifierFor().verify(good);
    expect(verified).toMatchObject({
      sub: claims['sub'],
      iss: issuer.issuerUrl,
      organization: { acme: { id: organizationId('acme') } },
      realm_access: { roles: expect.arrayContaining(['crm-admin']) },
    });
  });
});

describe('refused tokens (InvalidTokenError → 401)', () => {
  const forged = (changes: Record<string, unknown>, drop: string[] = []): Promise<string> => {
    const next: Record<string, unknown> = { ...claims, ...changes };
    for (const key of drop) delete next[key];
    return issuer.sign(next);
  };

  it('refuses claims of the wrong type or shape, and missing required claims', async () => {
    const t = now();
    const cases: Record<string, Promise<string>> = {
      expMissing: forged({}, ['exp']),
      expString: forged({ exp: String(t + 300) }),
      iatMissing: forged({}, ['iat']),
      iatString: forged({ iat: String(t) }),
      nbfString: forged({ nbf: String(t) }),
      subMissing: forged({}, ['sub']),
      subNumber: forged({ sub: 42 }),
      subNotAscii: forged({ sub: 'jürgen' }),
      typId: forged({ typ: 'ID' }),
      typMissing: forged({}, ['typ']),
      rolesString: forged({ realm_access: { roles: 'crm-admin' } }),
      rolesNumbers: forged({ realm_access: { roles: [1, 2] } }),
      realmAccessString: forged({ realm_access: 'crm-admin' }),
      organizationString: forged({ organization: 'acme' }),
      organizationIdNumber: forged({ organization: { acme: { id: 7 } } }),
      organizationIdNotUuid: forged({ organization: { acme: { id: 'acme' } } }),
      organizationMemberString: forged({ organization: { acme: 'x' } }),
      audienceOther: forged({ aud: 'some-other-api' }),
      audienceNumber: forged({ aud: 7 }),
      issuerOther: forged({ iss: 'http://127.0.0.1:9/realms/crm' }),
    };
    const verifier = verifierFor();
    for (const [name, token] of Object.entries(cases)) {
      const outcome = await verifier.verify(await token).then(
        () => 'accepted',
        (error: unknown) => (error instanceof InvalidTokenError ? 'refused' : `failed: ${String(error)}`),
      );
      expect({ name, outcome }).toEqual({ name, outcome: 'refused' });
    }
  });

  it('honours exp, nbf and iat with 30 s of clock skew, no more', async () => {
    const verifier = verifierFor();
    const t = now();
    const within = [forged({ exp: t - 10, iat: t - 300 }), forged({ nbf: t + 10 }), forged({ iat: t + 10 })];
    for (const token of within) await expect(verifier.verify(await token)).resolves.toMatchObject({ sub: claims['sub'] });
    const beyond = { expired: forged({ exp: t - 60, iat: t - 400 }), notYet: forged({ nbf: t + 60 }), issuedInFuture: forged({ iat: t + 60, exp: t + 400 }) };
    for (const [name, token] of Object.entries(beyond)) {
      const refused = await verifier.verify(await token).then(
        () => false,
        (error: unknown) => error instanceof InvalidTokenError,
      );
      expect({ name, refused }).toEqual({ name, refused: true });
    }
  });

  it('refuses every alg but RS256, alg confusion with the public key as HMAC secret included', async () => {
    const verifier = verifierFor({ cacheEntries: 0 });
    const [h, body, signature] = good.split('.') as [string, string, string];
    const { kid } = JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string };
    const { keys } = (await (await fetch(`${issuer.localUrl}${CERTS}`)).json()) as { keys: { kid: string }[] };
    const relabelled = (alg: string): string => `${b64({ alg, typ: 'JWT', kid })}.${body}.${signature}`;
    const hsHeader = b64({ alg: 'HS256', typ: 'JWT', kid });
    const hs256 = `${hsHeader}.${body}.${createHmac('sha256', JSON.stringify(keys[0])).update(`${hsHeader}.${body}`).digest('base64url')}`;
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${body}.`;
    await expect(verifier.verify(good)).resolves.toBeDefined();
    for (const token of [relabelled('RS384'), relabelled('PS256'), relabelled('ES256'), hs256, none]) {
      await expect(verifier.verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
    }
  });

  it('accepts only the strict compact serialization', async () => {
    const verifier = verifierFor({ cacheEntries: 0 });
    const [h, p, s] = good.split('.') as [string, string, string];
    // a 2048-bit signature is 342 base64url characters; its last carries 4 bits of padding, so
    // flipping the lowest bit decodes to the very same bytes: a lenient decoder would accept it
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(s.at(-1) ?? 'A');
    const malleable = `${s.slice(0, -1)}${alphabet[last ^ 1]}`;
    expect(Buffer.from(malleable, 'base64url').equals(Buffer.from(s, 'base64url'))).toBe(true);
    const variants: Record<string, string> = {
      fourParts: `${good}.${p}`,
      twoParts: `${h}.${p}`,
      padded: `${h}.${p}.${s}==`,
      paddedPayload: `${h}.${p}${'='.repeat((4 - (p.length % 4)) % 4 || 4)}.${s}`,
      standardBase64: `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64')}`,
      whitespace: `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`,
      newline: `${h}.${p}.\n${s}`,
      nonCanonical: `${h}.${p}.${malleable}`,
      jsonSerialization: JSON.stringify({ protected: h, payload: p, signature: s }),
      empty: '',
    };
    await expect(verifier.verify(good)).resolves.toBeDefined();
    for (const [name, token] of Object.entries(variants)) {
      const refused = await verifier.verify(token).then(
        () => false,
        (error: unknown) => error instanceof InvalidTokenError,
      );
      expect({ name, refused }).toEqual({ name, refused: true });
    }
  });
});

describe('keys and caching', () => {
  it('fetches the JWKS once for many tokens, and remembers verified tokens until they expire', async () => {
    const counting = await startCountingProxy(issuer.localUrl);
    try {
      const verifier = createTokenVerifier({
        authServerUrl: counting.url,
        issuerBaseUrl: issuer.baseUrl,
        realm: 'crm',
        clientId: 'crm-gateway',
        clockSkewSeconds: 0,
      });
      const tokens = await Promise.all(['admin@acme.test', 'rep@acme.test', 'viewer@acme.test'].map((u) => issuer.passwordToken(u)));
      for (const token of [...tokens, ...tokens]) await verifier.verify(token);
      expect(counting.requests(CERTS)).toBe(1);
      expect(verifier.stats).toEqual({ verified: 3, cached: 3, refused: 0 });

      // cached only until exp: past it, the token is checked again, and refused
      const shortLived = await issuer.sign({ ...claims, iat: now(), exp: now() + 1 });
      await verifier.verify(shortLived);
      await waitFor(
        'the short-lived token to be refused',
        () =>
          verifier.verify(shortLived).then(
            () => false,
            (error: unknown) => error instanceof InvalidTokenError,
          ),
        5000,
        100,
      );
      expect(verifier.stats.verified).toBe(4);
      expect(verifier.stats.refused).toBe(1);
    } finally {
      await counting.close();
    }
  });

  it('follows a key rotation: a token with a new kid fetches the keys again', async () => {
    const rotating = await startDevIssuer({ realmFile: REALM_FILE, port: 0 });
    const counting = await startCountingProxy(rotating.localUrl);
    try {
      const verifier = createTokenVerifier({
        authServerUrl: counting.url,
        issuerBaseUrl: rotating.baseUrl,
        realm: 'crm',
        clientId: 'crm-gateway',
        jwksCooldownMs: 0,
      });
      await verifier.verify(await rotating.passwordToken('admin@acme.test'));
      await rotating.rotateKeys();
      await expect(verifier.verify(await rotating.passwordToken('rep@acme.test'))).resolves.toMatchObject({ preferred_username: 'rep@acme.test' });
      expect(counting.requests(CERTS)).toBe(2);
    } finally {
      await counting.close();
      await rotating.close();
    }
  });

  it('fetches again for unknown kids at most once per cooldown', async () => {
    const counting = await startCountingProxy(issuer.localUrl);
    try {
      const verifier = createTokenVerifier({
        authServerUrl: counting.url,
        issuerBaseUrl: issuer.baseUrl,
        realm: 'crm',
        clientId: 'crm-gateway',
        jwksCooldownMs: 60_000,
      });
      await verifier.verify(good);
      const unknown = await Promise.all(Array.from({ length: 20 }, () => issuer.sign(claims, { kid: randomUUID() })));
      const outcomes = await Promise.all(
        unknown.map((t) =>
          verifier.verify(t).then(
            () => 'accepted',
            (e: unknown) => (e instanceof InvalidTokenError ? 'refused' : 'failed'),
          ),
        ),
      );
      expect(new Set(outcomes)).toEqual(new Set(['refused']));
      expect(counting.requests(CERTS)).toBe(1);
    } finally {
      await counting.close();
    }
  });

  it('gives up on a hung or unreachable Keycloak within the timeout, as "keys unavailable" (503), not an invalid token', async () => {
    const silent = await startSilentServer();
    try {
      const hung = createTokenVerifier({ authServerUrl: silent.url, issuerBaseUrl: issuer.baseUrl, realm: 'crm', clientId: 'crm-gateway', jwksTimeoutMs: 200 });
      const started = Date.now();
      await expect(hung.verify(good)).rejects.toBeInstanceOf(KeysUnavailableError);
      expect(Date.now() - started).toBeLessThan(5000);
      const down = createTokenVerifier({ authServerUrl: await closedUrl(), issuerBaseUrl: issuer.baseUrl, realm: 'crm', clientId: 'crm-gateway' });
      await expect(down.verify(good)).rejects.toBeInstanceOf(KeysUnavailableError);
    } finally {
      await silent.close();
    }
  });
});

describe('Kubernetes issuer split', () => {
  it('accepts tokens issued under the public URL with keys from the in-cluster URL, and refuses the in-cluster issuer', async () => {
    const PUBLIC = 'https://login.crm.example';
    const keycloak = await startDevIssuer({ realmFile: REALM_FILE, port: 0, publicBaseUrl: PUBLIC });
    const inCluster = await startCountingProxy(keycloak.localUrl);
    try {
      const verifier = createTokenVerifier({ authServerUrl: inCluster.url, issuerBaseUrl: PUBLIC, realm: 'crm', clientId: 'crm-gateway' });
      const token = await keycloak.passwordToken('admin@acme.test');
      expect(payloadOf(token)['iss']).toBe(`${PUBLIC}/realms/crm`);
      await expect(verifier.verify(token)).resolves.toMatchObject({ iss: `${PUBLIC}/realms/crm` });
      expect(inCluster.requests(CERTS)).toBe(1);

      const internalIssuer = await keycloak.sign({ ...payloadOf(token), iss: `${inCluster.url}/realms/crm` });
      await expect(verifier.verify(internalIssuer)).rejects.toBeInstanceOf(InvalidTokenError);
      // without the split (local default: the issuer is the key URL), the public issuer is refused
      const unsplit = createTokenVerifier({ authServerUrl: inCluster.url, realm: 'crm', clientId: 'crm-gateway' });
      await expect(unsplit.verify(token)).rejects.toBeInstanceOf(InvalidTokenError);
      await expect(unsplit.verify(internalIssuer)).resolves.toBeDefined();
    } finally {
      await inCluster.close();
      await keycloak.close();
    }
  });
});
