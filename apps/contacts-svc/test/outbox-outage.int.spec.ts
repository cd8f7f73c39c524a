import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { analyticsV1, contactsV1 } from '@crm/contracts';
import { callUnary, insecure, type ServiceHandle } from '@crm/platform';
import { configSchema as analyticsConfig, createAnalyticsService } from '@crm/analytics-svc';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, waitFor, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';

let infra: TestInfra;
let contacts: ServiceHandle;
let analytics: ServiceHandle;
let companies: contactsV1.CompanyServiceClient;
let overview: analyticsV1.AnalyticsServiceClient;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  analytics = await createAnalyticsService(analyticsConfig.parse(serviceEnv(infra)));
  companies = new contactsV1.CompanyServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
  overview = new analyticsV1.AnalyticsServiceClient(`127.0.0.1:${analytics.grpcPort}`, insecure());
});

afterAll(async () => {
  companies?.close();
  overview?.close();
  await analytics?.close();
  await contacts?.close();
  await infra?.close();
});

function create(name: string): Promise<contactsV1.CreateCompanyResponse> {
  return asAdminOf('acme', () => callUnary(companies, companies.createCompany, { company: contactsV1.Company.fromPartial({ name, industry: 'outage' }) }));
}

async function sql(query: string): Promise<number> {
  const [row] = await contacts.orm.em.fork().execute<{ n: string }[]>(query, [organizationId('acme')]);
  return Number(row?.n);
}

describe('outbox during a NATS outage', () => {
  it('loses no event: the relay catches up and analytics matches the companies stored', async () => {
    for (let i = 0; i < 10; i++) await create(`before outage ${i}`);
    await infra.nats.stop();
    for (let i = 0; i < 15; i++) await create(`during outage ${i}`);
    // the writes committed; their events wait in the outbox
    expect(await sql('select count(*) as n from contacts.outbox where published_at is null and organization_id = ?')).toBeGreaterThanOrEqual(15);
    await infra.nats.start();
    for (let i = 0; i < 5; i++) await create(`after outage ${i}`);

    const stored = await sql('select count(*) as n from contacts.company where deleted_at is null and organization_id = ?');
    expect(stored).toBe(30);
    await waitFor(
      'analytics to count every stored company',
      async () => Number((await asAdminOf('acme', () => callUnary(overview, overview.getOverview, {}))).companyCount) === stored,
      30_000,
      100,
    );
    expect(await sql('select count(*) as n from contacts.outbox where published_at is null and organization_id = ?')).toBe(0);
  });
});
