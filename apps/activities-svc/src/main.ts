import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('activities-svc');
const { createActivitiesService } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createActivitiesService(), 'activities-svc');
