import { startTelemetry } from '@crm/platform/telemetry';

await startTelemetry('contacts-svc');
const { createContactsService } = await import('./app.ts');
const { runUntilSignal } = await import('@crm/platform');
await runUntilSignal(() => createContactsService(), 'contacts-svc');
