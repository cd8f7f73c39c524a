import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('analytics-svc');
const { createAnalyticsService } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createAnalyticsService(), 'analytics-svc');
