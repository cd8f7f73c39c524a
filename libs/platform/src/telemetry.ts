import { register } from 'node:module';
import type { IncomingMessage } from 'node:http';
import type { InstrumentationBase } from '@opentelemetry/instrumentation';

/**
 * Paths of the operational endpoints (`/healthz`, `/readyz`, `/metrics`) on any port: probes and
 * scrapes, polled every few seconds by Kubernetes and Prometheus. They are never traced, and
 * neither is anything they do (a readiness check's database round trip): their requests run
 * with tracing suppressed.
 */
export const OPS_PATHS: readonly string[] = ['/healthz', '/readyz', '/metrics'];

/**
 * Methods of `grpc.health.v1.Health` (Kubernetes gRPC probes, the gateway's backend readiness):
 * never traced. The gRPC instrumentation matches method names without their service.
 */
export const GRPC_HEALTH_METHODS: readonly string[] = ['Check', 'Watch'];

/** True when `url` (path and query of a request) is one of the {@link OPS_PATHS}. */
export function isOpsRequest(url: string | undefined): boolean {
  const path = (url ?? '').split('?', 1)[0] ?? '';
  return OPS_PATHS.includes(path.length > 1 ? path.replace(/\/+$/, '') : path);
}

/**
 * The instrumentations of every process, configured so that only work somebody asked for makes
 * spans (no idle trace noise):
 * - HTTP (server and client): the {@link OPS_PATHS} are not traced (their requests run with
 *   tracing suppressed, so their database checks make no spans either); outgoing requests only
 *   inside a trace;
 * - Express: route and middleware spans under the HTTP span (its `http.route` is the template);
 * - gRPC (server and client): the health service ({@link GRPC_HEALTH_METHODS}) is not traced;
 * - pg: queries only inside a trace (`requireParentSpan`), so the outbox relay's polling,
 *   migrations at boot and other background queries make no root spans.
 * Constructing them enables their module hooks: call before the instrumented modules load.
 */
export async function createInstrumentations(): Promise<InstrumentationBase[]> {
  const [{ HttpInstrumentation }, { ExpressInstrumentation }, { GrpcInstrumentation }, { PgInstrumentation }] = await Promise.all([
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-express'),
    import('@opentelemetry/instrumentation-grpc'),
    import('@opentelemetry/instrumentation-pg'),
  ]);
  return [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (request: IncomingMessage) => isOpsRequest(request.url),
      requireParentforOutgoingSpans: true,
    }),
    new ExpressInstrumentation(),
    new GrpcInstrumentation({ ignoreGrpcMethods: [...GRPC_HEALTH_METHODS] }),
    new PgInstrumentation({ requireParentSpan: true }),
  ];
}

/** True when tracing is on: `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or `OTEL_SDK_DISABLED=false`; never with `OTEL_SDK_DISABLED=true`. */
export function telemetryEnabled(env: Record<string, string | undefined> = process.env): boolean {
  const disabled = env['OTEL_SDK_DISABLED']?.trim().toLowerCase();
  if (disabled === 'true') return false;
  return disabled === 'false' || Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT']);
}

/**
 * Starts OpenTelemetry before anything else is imported (call it first in `main.ts`, then import
 * the app dynamically): registers the ESM loader hook so express, http, grpc-js and pg are
 * patched, and starts the NodeSDK with W3C trace-context propagation, the
 * {@link createInstrumentations} and the OTLP trace exporter configured by the standard `OTEL_*`
 * variables. Off unless {@link telemetryEnabled}, so local runs do not retry a missing collector.
 * Traces only: metrics are Prometheus (`/metrics`) and logs JSON on stdout, so the SDK exports
 * metrics and logs only when `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER` ask for it.
 * Returns a shutdown function that flushes pending spans.
 */
export async function startTelemetry(serviceName: string): Promise<() => Promise<void>> {
  if (!telemetryEnabled()) return async () => undefined;
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const [{ NodeSDK }, instrumentations] = await Promise.all([import('@opentelemetry/sdk-node'), createInstrumentations()]);
  const sdk = new NodeSDK({
    serviceName: process.env['OTEL_SERVICE_NAME'] ?? serviceName,
    instrumentations,
    ...(process.env['OTEL_METRICS_EXPORTER'] ? {} : { metricReaders: [] }),
    ...(process.env['OTEL_LOGS_EXPORTER'] ? {} : { logRecordProcessors: [] }),
  });
  sdk.start();
  return () => sdk.shutdown();
}
