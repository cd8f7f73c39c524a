import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('pipeline-svc');
const { createPipelineService } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createPipelineService(), 'pipeline-svc');
