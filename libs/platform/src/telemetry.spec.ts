import { describe, expect, it } from '@jest/globals';
import { isOpsRequest, telemetryEnabled } from './telemetry.ts';

describe('telemetry settings', () => {
  it('treat probes and scrapes as ops requests, with or without query or trailing slash, and nothing else', () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/readyz?verbose', '/metrics/']) expect(isOpsRequest(url)).toBe(true);
    for (const url of ['/', '/api/v1/companies', '/api/v1/metrics', '/healthzz', '/metrics-x', undefined]) expect(isOpsRequest(url)).toBe(false);
  });

  it('are off unless an OTLP endpoint is set or the SDK is explicitly enabled', () => {
    expect(telemetryEnabled({})).toBe(false);
    expect(telemetryEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBe(false);
    expect(telemetryEnabled({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318' })).toBe(false);
    expect(telemetryEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318' })).toBe(true);
    expect(telemetryEnabled({ OTEL_SDK_DISABLED: 'false' })).toBe(true);
  });
});
