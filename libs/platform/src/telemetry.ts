import { register } from 'node:module';

/**
 * Starts OpenTelemetry before anything else is imported (call it first in `main.ts`, then import
 * the app dynamically): registers the ESM loader hook so express, http, grpc-js and pg are
 * patched, and starts the NodeSDK with W3C trace-context propagation and the OTLP exporter
 * configured by the standard `OTEL_*` variables. Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set
 * (or `OTEL_SDK_DISABLED=false`), so local runs do not retry a missing collector.
 * Returns a shutdown function that flushes pending spans.
 */
export async function startTelemetry(serviceName: string): Promise<() => Promise<void>> {
  const enabled = process.env['OTEL_SDK_DISABLED'] === 'false' || Boolean(process.env['OTEL_EXPORTER_OTLP_ENDPOINT']);
  if (!enabled) return async () => undefined;
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const [{ NodeSDK }, { HttpInstrumentation }, { ExpressInstrumentation }, { GrpcInstrumentation }, { PgInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-express'),
    import('@opentelemetry/instrumentation-grpc'),
    import('@opentelemetry/instrumentation-pg'),
  ]);
  const sdk = new NodeSDK({
    serviceName: process.env['OTEL_SERVICE_NAME'] ?? serviceName,
    instrumentations: [new HttpInstrumentation(), new ExpressInstrumentation(), new GrpcInstrumentation(), new PgInstrumentation()],
  });
  sdk.start();
  return () => sdk.shutdown();
}
