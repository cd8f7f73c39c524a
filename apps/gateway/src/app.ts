import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { rateLimit, ipKeyGenerator } from 'express-rate-limit';
import swaggerUi from 'swagger-ui-express';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { grpcHealthClient } from './grpc-health.ts';
import { analyticsV1, contactV1, contactsV1 } from '@crm/contracts';
import { createLogger, insecure, loadConfig, runChecks } from '@crm/platform';
import { authenticate, createTokenVerifier, type AccessTokenClaims } from './auth/keycloak.auth.ts';
import { tenantContext } from './auth/tenant.ts';
import { configSchema, type GatewayConfig } from './config.ts';

export { configSchema, type GatewayConfig };
import { crudRouter } from './http/crud.router.ts';
import { IdempotencyStore } from './http/idempotency.ts';
import { errorHandler, problem, sendProblem } from './http/problem.ts';
import { buildOpenApi } from './openapi/openapi.ts';
import { analyticsRouter } from './resources/analytics.ts';
import { companiesResource } from './resources/companies.ts';
import { contactsResource } from './resources/contacts.ts';

/** A running gateway: its base URL and an orderly `close()`. */
export interface GatewayHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Composition root of the gateway: config → idempotency store (schema `gateway`) → gRPC clients →
 * Express app (request id, metrics, auth, tenant, rate limit, resources, problems) → listen.
 */
export async function createGateway(config: GatewayConfig = loadConfig(configSchema)): Promise<GatewayHandle> {
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const idempotency = new IdempotencyStore(config.DATABASE_URL);
  await idempotency.migrate();

  const companies = new contactsV1.CompanyServiceClient(config.CONTACTS_GRPC_URL, insecure());
  const contacts = new contactV1.ContactServiceClient(config.CONTACTS_GRPC_URL, insecure());
  const analytics = new analyticsV1.AnalyticsServiceClient(config.ANALYTICS_GRPC_URL, insecure());
  const health = { contacts: grpcHealthClient(config.CONTACTS_GRPC_URL), analytics: grpcHealthClient(config.ANALYTICS_GRPC_URL) };
  const resources = [companiesResource(companies, config.GRPC_DEADLINE_MS), contactsResource(contacts, config.GRPC_DEADLINE_MS)];
  const issuerUrl = `${config.KEYCLOAK_URL.replace(/\/$/, '')}/realms/${config.KEYCLOAK_REALM}`;
  const openapi = buildOpenApi(resources as unknown as Parameters<typeof buildOpenApi>[0], issuerUrl);
  const verifier = createTokenVerifier({
    authServerUrl: config.KEYCLOAK_URL.replace(/\/$/, ''),
    realm: config.KEYCLOAK_REALM,
    clientId: config.KEYCLOAK_CLIENT_ID,
  });

  const registry = new Registry();
  registry.setDefaultLabels({ service: 'gateway' });
  collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const rejectedTokens = new Counter({ name: 'auth_rejected_tokens_total', help: 'bearer tokens refused', registers: [registry] });

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are record versions, set by the resources
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.use((req, res, next) => {
    const requestId = /^[\w.-]{1,100}$/.test(req.get('x-request-id') ?? '') ? String(req.get('x-request-id')) : randomUUID();
    res.locals['requestId'] = requestId;
    res.set('X-Request-Id', requestId);
    const end = httpDuration.startTimer({ method: req.method });
    res.on('finish', () =>
      end({
        route: (req.route as { path?: string } | undefined)?.path ? `${req.baseUrl}${(req.route as { path: string }).path}` : 'unmatched',
        status: String(res.statusCode),
      }),
    );
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const checks = await runChecks({
      database: () => idempotency.ping(),
      contacts: () => health.contacts.serving(),
      analytics: () => health.analytics.serving(),
    });
    const ok = Object.values(checks).every(Boolean);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  app.use('/api/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerOptions: { url: '/api/v1/openapi.json' }, customSiteTitle: 'CRM API' }));

  const api = express.Router();
  api.use(express.json({ limit: '1mb', type: ['application/json', 'application/*+json'] }));
  api.use(
    authenticate(verifier, config.KEYCLOAK_REALM, (reason) => {
      rejectedTokens.inc();
      logger.info({ reason }, 'access token refused');
    }),
  );
  api.use(
    rateLimit({
      windowMs: 60_000,
      limit: config.RATE_LIMIT_PER_MINUTE,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      keyGenerator: (req, res) => (res.locals['claims'] as AccessTokenClaims | undefined)?.sub ?? ipKeyGenerator(req.ip ?? ''),
      handler: (_req, res, _next, options) => {
        sendProblem(res, problem(429, 'rate-limited', 'Too many requests', { detail: `limit is ${String(options.limit)} requests per minute` }), {
          'Retry-After': String(Math.ceil(options.windowMs / 1000)),
        });
      },
    }),
  );
  api.use(tenantContext());
  for (const r of resources) api.use(`/${r.plural}`, crudRouter(r as Parameters<typeof crudRouter>[0], idempotency));
  api.use('/analytics', analyticsRouter(analytics, config.GRPC_DEADLINE_MS));
  api.use((req, res) => sendProblem(res, problem(404, 'not-found', 'Not found', { detail: `no route ${req.method} ${req.originalUrl}` })));
  app.use('/api/v1', api);
  app.use((req, res) => sendProblem(res, problem(404, 'not-found', 'Not found', { detail: `no route ${req.method} ${req.originalUrl}` })));
  app.use(errorHandler(logger));

  const server = app.listen(config.PORT, config.HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${port}`;
  logger.info({ url }, 'gateway listening');
  return {
    url,
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      for (const c of [companies, contacts, analytics]) c.close();
      health.contacts.close();
      health.analytics.close();
      await idempotency.close();
    },
  };
}
