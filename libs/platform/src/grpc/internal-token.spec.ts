import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { calculateJwkThumbprint, exportJWK, SignJWT, UnsecuredJWT } from 'jose';
import { z } from 'zod';
import { loadConfig, internalTokenPublicKeys } from '../config.ts';
import type { RequestContext } from '../context.ts';
import {
  createInternalTokenSigner,
  createInternalTokenVerifier,
  INTERNAL_TOKEN_TYPE,
  parseInternalTokenPrivateKey,
  parseInternalTokenPublicKeys,
  type InternalTokenPrivateKey,
  type InternalTokenPublicKey,
} from './internal-token.ts';

const ORG = '0b4c7a8e-0000-4000-8000-000000000001';
const OTHER_ORG = '0b4c7a8e-0000-4000-8000-000000000002';
const COMPANIES = 'crm.contacts.v1.CompanyService';
const ANALYTICS = 'crm.analytics.v1.AnalyticsService';

function keyPair(): { privateKey: InternalTokenPrivateKey; publicKey: InternalTokenPublicKey; publicPem: string; privatePem: string } {
  const pair = generateKeyPairSync('ed25519');
  const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const [publicKey] = parseInternalTokenPublicKeys(publicPem);
  return { privateKey: parseInternalTokenPrivateKey(privatePem), publicKey: publicKey!, publicPem, privatePem };
}

const context = (): RequestContext => ({ organizationId: ORG, userId: 'user-1', roles: ['crm-rep'], requestId: 'req-1' });

/** A token signed with `key` under header `kid`, with `claims` over valid ones (times in seconds). */
function forge(key: KeyObject, kid: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ org: ORG, roles: ['crm-admin'], iss: 'crm-gateway', sub: 'u', aud: COMPANIES, iat: now, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: 'EdDSA', typ: INTERNAL_TOKEN_TYPE, kid, ...header })
    .sign(key);
}

async function refusal(promise: Promise<unknown>): Promise<{ kind: string; code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { kind: string; code: string; message: string };
  }
  throw new Error('expected the token to be refused');
}

describe('internal tokens', () => {
  const trusted = keyPair();
  const verifier = createInternalTokenVerifier([trusted.publicKey]);

  it('carry the request context to the service they were signed for', async () => {
    const signer = createInternalTokenSigner(trusted.privateKey);
    const token = await signer.tokenFor(context(), COMPANIES);
    expect(await verifier.verify(token, COMPANIES)).toEqual({ organizationId: ORG, userId: 'user-1', roles: ['crm-rep'] });
  });

  it("are signed once per caller and audience and reused by the caller's later requests", async () => {
    const signer = createInternalTokenSigner(trusted.privateKey);
    const ctx = context();
    const first = await signer.tokenFor(ctx, COMPANIES);
    expect(await signer.tokenFor(ctx, COMPANIES)).toBe(first);
    const nextRequest: RequestContext = { ...ctx, requestId: 'req-2' };
    expect(await signer.tokenFor(nextRequest, COMPANIES)).toBe(first);
    expect(await signer.tokenFor(ctx, ANALYTICS)).not.toBe(first);
    // anything that changes who calls gets its own token
    for (const other of [
      { ...ctx, userId: 'user-2' },
      { ...ctx, organizationId: OTHER_ORG },
      { ...ctx, roles: ['crm-admin' as const] },
    ]) {
      const token = await signer.tokenFor(other, COMPANIES);
      expect(token).not.toBe(first);
      expect(await verifier.verify(token, COMPANIES)).toEqual({ organizationId: other.organizationId, userId: other.userId, roles: other.roles });
    }
  });

  it('are verified once, then found in the cache until they expire', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await forge(trusted.privateKey.key, trusted.privateKey.kid, { iat: now - 63, exp: now - 3 });
    const own = createInternalTokenVerifier([trusted.publicKey]);
    // expired 3 s ago: still inside the 5 s tolerance
    expect(await own.verify(token, COMPANIES)).toMatchObject({ userId: 'u' });
    expect(await own.verify(token, COMPANIES)).toMatchObject({ userId: 'u' });
    // the cache is per audience: the same token is refused for a service it was not signed for
    expect(await refusal(own.verify(token, ANALYTICS))).toMatchObject({ code: 'INVALID_CALL_TOKEN' });
    const expired = await forge(trusted.privateKey.key, trusted.privateKey.kid, { iat: now - 70, exp: now - 10 });
    expect(await refusal(own.verify(expired, COMPANIES))).toMatchObject({ code: 'INVALID_CALL_TOKEN', message: expect.stringContaining('expired') });
  });

  it('are refused when missing', async () => {
    expect(await refusal(verifier.verify(undefined, COMPANIES))).toMatchObject({ kind: 'unauthenticated', code: 'MISSING_CALL_TOKEN' });
  });

  it('are refused for another audience', async () => {
    const token = await createInternalTokenSigner(trusted.privateKey).tokenFor(context(), ANALYTICS);
    expect(await refusal(verifier.verify(token, COMPANIES))).toMatchObject({
      kind: 'unauthenticated',
      code: 'INVALID_CALL_TOKEN',
      message: expect.stringContaining('aud'),
    });
  });

  it('are refused when signed by another key, even under the trusted key id', async () => {
    const intruder = keyPair();
    const own = await createInternalTokenSigner(intruder.privateKey).tokenFor(context(), COMPANIES);
    expect(await refusal(verifier.verify(own, COMPANIES))).toMatchObject({ code: 'INVALID_CALL_TOKEN', message: expect.stringContaining('unknown key') });
    const borrowedKid = await forge(intruder.privateKey.key, trusted.publicKey.kid);
    expect(await refusal(verifier.verify(borrowedKid, COMPANIES))).toMatchObject({ code: 'INVALID_CALL_TOKEN', message: expect.stringContaining('signature') });
  });

  it('are refused when expired, living longer than 60 s, unsigned, of another type or with malformed claims', async () => {
    const now = Math.floor(Date.now() / 1000);
    const { key } = trusted.privateKey;
    const kid = trusted.publicKey.kid;
    const cases: [string, Promise<string>][] = [
      ['expired', forge(key, kid, { iat: now - 120, exp: now - 60 })],
      ['long-lived', forge(key, kid, { exp: now + 3600 })],
      ['unsigned', Promise.resolve(new UnsecuredJWT({ org: ORG, roles: [], sub: 'u' }).setAudience(COMPANIES).setIssuedAt().setExpirationTime('1m').encode())],
      ['plain JWT type', forge(key, kid, {}, { typ: 'JWT' })],
      ['organization not a UUID', forge(key, kid, { org: "1' or '1'='1" })],
      ['no user', forge(key, kid, { sub: '' })],
      ['not a JWT', Promise.resolve('x-organization-id')],
    ];
    for (const [what, token] of cases) {
      expect({ what, refused: await refusal(verifier.verify(await token, COMPANIES)) }).toMatchObject({
        what,
        refused: { kind: 'unauthenticated', code: 'INVALID_CALL_TOKEN' },
      });
    }
  });

  it('drop unknown roles', async () => {
    const token = await forge(trusted.privateKey.key, trusted.publicKey.kid, { roles: ['crm-viewer', 'superuser'] });
    expect((await verifier.verify(token, COMPANIES)).roles).toEqual(['crm-viewer']);
  });

  it('are accepted from every configured key during a rotation', async () => {
    const next = keyPair();
    const keys = parseInternalTokenPublicKeys(`${trusted.publicPem}\n${next.publicPem}`);
    expect(keys.map((k) => k.kid)).toEqual([trusted.publicKey.kid, next.publicKey.kid]);
    const rotating = createInternalTokenVerifier(keys);
    for (const signing of [trusted, next]) {
      const token = await createInternalTokenSigner(signing.privateKey).tokenFor(context(), COMPANIES);
      expect(await rotating.verify(token, COMPANIES)).toEqual({ organizationId: ORG, userId: 'user-1', roles: ['crm-rep'] });
    }
  });
});

describe('internal token keys', () => {
  it('read PEM, escaped PEM and JWK (Set) alike, with the RFC 7638 thumbprint as key id', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = await exportJWK(publicKey);
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const kid = await calculateJwkThumbprint(jwk);
    for (const text of [pem, pem.replaceAll('\n', '\\n'), JSON.stringify(jwk), JSON.stringify({ keys: [{ ...jwk, kid: 'ignored' }] })]) {
      expect(parseInternalTokenPublicKeys(text).map((k) => k.kid)).toEqual([kid]);
    }
    const privateJwk = JSON.stringify(await exportJWK(privateKey));
    expect(parseInternalTokenPrivateKey(privateJwk).kid).toBe(kid);
    expect(parseInternalTokenPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()).kid).toBe(kid);
  });

  it('refuse what is not an Ed25519 key, naming the variable', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => parseInternalTokenPublicKeys(rsa)).toThrow(/not Ed25519/);
    expect(() => parseInternalTokenPublicKeys('hunter2')).toThrow(/no key found/);
    const schema = z.object({ INTERNAL_TOKEN_PUBLIC_KEYS: internalTokenPublicKeys });
    expect(() => loadConfig(schema, { INTERNAL_TOKEN_PUBLIC_KEYS: rsa })).toThrow(/INTERNAL_TOKEN_PUBLIC_KEYS: Ed25519 public key\(s\).*not Ed25519/);
    expect(() => loadConfig(schema, {})).toThrow(/INTERNAL_TOKEN_PUBLIC_KEYS: required/);
  });
});
