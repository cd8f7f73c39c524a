import type { NatsConnection } from '@nats-io/transport-node';
import { analyticsV1 } from '@crm/contracts';
import { connectNats, createLogger, insecure, type ServiceHandle } from '@crm/platform';
import { serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { configSchema, createAnalyticsService } from '../../src/app.ts';

/** analytics-svc booted on private infrastructure, with a NATS connection to publish events as a relay would and a gRPC client. */
export interface AnalyticsUnderTest {
  infra: TestInfra;
  analytics: ServiceHandle;
  nc: NatsConnection;
  client: analyticsV1.AnalyticsServiceClient;
}

/** Boots {@link AnalyticsUnderTest}; `name` names the test's NATS connection. */
export async function startAnalyticsUnderTest(name: string): Promise<AnalyticsUnderTest> {
  const infra = await startTestInfra();
  const analytics = await createAnalyticsService(configSchema.parse(serviceEnv(infra)));
  const nc = await connectNats(infra.nats.url, name, createLogger(name, 'silent'), infra.natsAuth);
  const client = new analyticsV1.AnalyticsServiceClient(`127.0.0.1:${analytics.grpcPort}`, insecure());
  return { infra, analytics, nc, client };
}

/** Closes what {@link startAnalyticsUnderTest} started (any part may be missing when boot failed). */
export async function stopAnalyticsUnderTest(t: Partial<AnalyticsUnderTest>): Promise<void> {
  t.client?.close();
  await t.nc?.drain();
  await t.analytics?.close();
  await t.infra?.close();
}
