/**
 * Shared platform code of the CRM services. `@crm/platform/telemetry` is separate on purpose: it
 * must load before anything this barrel imports.
 */
export * from './config.ts';
export * from './context.ts';
export * from './errors.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './ops-server.ts';
export * from './grpc/status.ts';
export * from './grpc/metadata.ts';
export * from './grpc/internal-token.ts';
export * from './grpc/options.ts';
export * from './grpc/server.ts';
export * from './grpc/client.ts';
export * from './persistence/database.ts';
export * from './persistence/ids.ts';
export * from './persistence/cursor.ts';
export * from './messaging/event.ts';
export * from './messaging/inbox.ts';
export * from './messaging/outbox.migration.ts';
export * from './messaging/nats.ts';
export * from './messaging/relay.ts';
export * from './messaging/consumer.ts';
export * from './messaging/retry.ts';
export * from './messaging/tracing.ts';
export * from './service-runtime.ts';
export * from './records/record-entity.ts';
export * from './records/record-service.ts';
export * from './records/record-grpc.ts';
export * from './records/idempotency.ts';
export * from './records/search.ts';
export { RecordReader, type ReaderListQuery } from './records/record-reader.ts';
