import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { contactsV1 } from '@crm/contracts';
import {
  callUnary,
  createInternalTokenSigner,
  insecure,
  MD,
  parseInternalTokenPrivateKey,
  parseInternalTokenPublicKeys,
  type RequestContext,
  type ServiceHandle,
} from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, testSigner, TEST_INTERNAL_TOKEN_KEYS, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';

/**
 * Zero trust at the gRPC port: contacts-svc acts only for callers presenting an internal token
 * signed by a trusted key for the service called; plain identity metadata counts for nothing.
 */

let infra: TestInfra;
let contacts: ServiceHandle;
let companies: contactsV1.CompanyServiceClient;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  companies = new contactsV1.CompanyServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
});

afterAll(async () => {
  companies?.close();
  await contacts?.close();
  await infra?.close();
});

const ACME = organizationId('acme');
const GLOBEX = organizationId('globex');
const listRequest = contactsV1.ListCompaniesRequest.fromPartial({ pageSize: 200 });
const adminOf = (org: string): RequestContext => ({ organizationId: org, userId: 'intruder', roles: ['crm-admin'], requestId: 'r-1' });

/** ListCompanies with exactly `metadata`: what any process reaching the port can send. */
function rawList(metadata: Metadata): Promise<contactsV1.ListCompaniesResponse> {
  return new Promise((resolve, reject) => {
    companies.listCompanies(listRequest, metadata, { deadline: new Date(Date.now() + 5000) }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** The gRPC status a raw call fails with, and the stable error code in its trailers. */
async function failure(call: Promise<unknown>): Promise<{ code: status; errorCode: unknown }> {
  try {
    await call;
  } catch (error) {
    const e = error as ServiceError;
    return { code: e.code, errorCode: e.metadata.get('x-error-code')[0] };
  }
  throw new Error('expected the call to be refused');
}

function withToken(token: string, plain: Record<string, string> = {}): Metadata {
  const md = new Metadata();
  md.set(MD.authorization, `Bearer ${token}`);
  for (const [k, v] of Object.entries(plain)) md.set(k, v);
  return md;
}

describe('contacts-svc gRPC authentication', () => {
  it('refuses a call that only claims an identity in plain metadata (UNAUTHENTICATED)', async () => {
    const md = new Metadata();
    md.set(MD.organizationId, ACME);
    md.set(MD.userId, 'intruder');
    md.set(MD.roles, 'crm-admin');
    expect(await failure(rawList(md))).toEqual({ code: status.UNAUTHENTICATED, errorCode: 'MISSING_CALL_TOKEN' });
  });

  it('refuses a token forged with another key, also under the trusted key id', async () => {
    const intruderPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const intruderKey = parseInternalTokenPrivateKey(intruderPem);
    const trustedKid = parseInternalTokenPublicKeys(TEST_INTERNAL_TOKEN_KEYS.publicKeyPem)[0]!.kid;
    for (const kid of [intruderKey.kid, trustedKid]) {
      const forged = await createInternalTokenSigner({ ...intruderKey, kid }).tokenFor(adminOf(ACME), 'crm.contacts.v1.CompanyService');
      expect(await failure(rawList(withToken(forged)))).toEqual({ code: status.UNAUTHENTICATED, errorCode: 'INVALID_CALL_TOKEN' });
    }
  });

  it('refuses a valid token issued for another service', async () => {
    const forAnalytics = await testSigner.tokenFor(adminOf(ACME), 'crm.analytics.v1.AnalyticsService');
    expect(await failure(rawList(withToken(forAnalytics)))).toEqual({ code: status.UNAUTHENTICATED, errorCode: 'INVALID_CALL_TOKEN' });
    const forContacts = await testSigner.tokenFor(adminOf(ACME), 'crm.contacts.v1.ContactService');
    expect(await failure(rawList(withToken(forContacts)))).toEqual({ code: status.UNAUTHENTICATED, errorCode: 'INVALID_CALL_TOKEN' });
  });

  it('serves a valid token, for the tenant in the token whatever plain metadata says', async () => {
    const blank = contactsV1.Company.fromPartial({});
    const created = await asAdminOf('acme', () => callUnary(companies, companies.createCompany, { company: { ...blank, name: 'Initrode' } }));
    expect(created.company?.name).toBe('Initrode');

    const token = await testSigner.tokenFor(adminOf(GLOBEX), 'crm.contacts.v1.CompanyService');
    const asGlobex = await rawList(withToken(token, { [MD.organizationId]: ACME, [MD.userId]: 'admin-of-acme' }));
    expect(asGlobex.companies.map((c) => c.id)).not.toContain(created.company?.id);
    const asAcme = await asAdminOf('acme', () => callUnary(companies, companies.listCompanies, listRequest));
    expect(asAcme.companies.map((c) => c.id)).toContain(created.company?.id);
  });
});
