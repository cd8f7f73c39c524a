import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('quotes-svc');
const { createQuotesService } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createQuotesService(), 'quotes-svc');
