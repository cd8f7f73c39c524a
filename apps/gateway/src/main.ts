import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('gateway');
const { createGateway } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createGateway(), 'gateway');
