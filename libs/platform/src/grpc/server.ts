import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { runWithContext } from '../context.ts';
import { isDomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import type { InternalTokenVerifier } from './internal-token.ts';
import { bearerToken, contextFromMetadata } from './metadata.ts';
import { raiseStreamResetLimit, serverOptions } from './options.ts';
import { toServiceError } from './status.ts';

/**
 * Plain async handlers keyed by the ts-proto method name (e.g. `createCompany`). They receive the
 * decoded request and return the response; the request context is available via
 * `requireContext()`. Throw {@link DomainError}s for expected failures.
 */
export type UnaryHandlers<S extends ServiceDefinition> = {
  [K in keyof S]: S[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? (request: Req) => Promise<Res>
    : never;
};

/** One gRPC service to expose: its ts-proto definition, fully-qualified name and handlers. */
export interface ServiceBinding<S extends ServiceDefinition = ServiceDefinition> {
  /** Fully-qualified proto name, e.g. `crm.contacts.v1.CompanyService` (health status key). */
  name: string;
  definition: S;
  handlers: UnaryHandlers<S>;
}

/** Helps TypeScript check handlers against their definition. */
export function bindService<S extends ServiceDefinition>(name: string, definition: S, handlers: UnaryHandlers<S>): ServiceBinding {
  return { name, definition, handlers } as unknown as ServiceBinding;
}

/** A handler that reads a decoded request as plain data (generic bindings such as the records kit's). */
export type PlainHandler = (request: Record<string, unknown>) => Promise<object>;

/**
 * Binds plain handlers by method name to a ts-proto service definition; the service's full name
 * comes from the definition's method paths (`/crm.contacts.v1.CompanyService/CreateCompany`).
 * Throws at boot when a handler names no method of the definition or a method has no handler.
 */
export function bindHandlers(definition: ServiceDefinition, handlers: Record<string, PlainHandler>): ServiceBinding {
  const methods = Object.keys(definition);
  const missing = methods.filter((m) => !handlers[m]);
  const unknown = Object.keys(handlers).filter((h) => !methods.includes(h));
  if (missing.length || unknown.length)
    throw new Error(`handlers do not match the service: missing ${missing.join(', ') || '-'}, unknown ${unknown.join(', ') || '-'}`);
  const name = /^\/([^/]+)\//.exec(definition[methods[0] ?? '']?.path ?? '')?.[1] ?? '';
  const wrapped: Record<string, (request: unknown) => Promise<unknown>> = {};
  for (const [method, handle] of Object.entries(handlers)) {
    wrapped[method] = (request) => handle(typeof request === 'object' && request !== null ? (request as Record<string, unknown>) : {});
  }
  return { name, definition, handlers: wrapped as UnaryHandlers<ServiceDefinition> };
}

/**
 * The full gRPC name of `method` of `binding` without the leading slash, e.g.
 * `crm.contacts.v1.CompanyService/GetCompany`: the `method` label of the gRPC metrics and the
 * method in logs. Taken from the definition's wire path, so every method of every service has its
 * own label (two services' `get` never merge); `<service>/<handler key>` only for a definition
 * without paths.
 */
export function grpcMethodName(binding: ServiceBinding, method: string): string {
  const path = (binding.definition[method] as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' && /^\/[^/]+\/[^/]+$/.test(path) ? path.slice(1) : `${binding.name}/${method}`;
}

export interface GrpcServerHandle {
  port: number;
  health: HealthImplementation;
  /** Marks NOT_SERVING, then drains in-flight calls (forces after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/** Error codes of a call without a valid internal token (logged: someone reached the port without being the gateway). */
const REFUSED_TOKEN_CODES = new Set(['MISSING_CALL_TOKEN', 'INVALID_CALL_TOKEN']);

/**
 * Starts a grpc-js server with `grpc.health.v1.Health` and the given services, with the channel
 * settings of grpc/options.ts. Every unary call must carry an internal token for its service
 * (`authorization: Bearer …`, checked by `verifier`; UNAUTHENTICATED otherwise); its request
 * context is built from the verified token only, the handler runs inside it (not at all when the
 * caller has cancelled meanwhile), is counted and timed, and thrown errors are mapped once to gRPC
 * status (see grpc/status.ts). Health needs no token (probes); it starts SERVING for '' and every
 * service name.
 */
export async function startGrpcServer(options: {
  host: string;
  port: number;
  services: ServiceBinding[];
  /** Checks internal tokens (the public keys of INTERNAL_TOKEN_PUBLIC_KEYS). */
  verifier: InternalTokenVerifier;
  logger: Logger;
  metrics: PlatformMetrics;
}): Promise<GrpcServerHandle> {
  const server = new Server(serverOptions());
  raiseStreamResetLimit(server);
  const statusMap = Object.fromEntries([['', 'SERVING'], ...options.services.map((s) => [s.name, 'SERVING'])] as const);
  const health = new HealthImplementation(statusMap);
  health.addToServer(server);

  for (const binding of options.services) {
    const implementation: UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(binding.handlers) as [string, (req: unknown) => Promise<unknown>][]) {
      const fullName = grpcMethodName(binding, method);
      implementation[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const stopTimer = options.metrics.grpcDuration.startTimer({ method: fullName });
        const finish = (code: status) => {
          stopTimer();
          options.metrics.grpcRequests.inc({ method: fullName, code: status[code] ?? String(code) });
        };
        void (async () => {
          try {
            const identity = await options.verifier.verify(bearerToken(call.metadata), binding.name);
            const ctx = contextFromMetadata(call.metadata, identity);
            // the caller gave up (deadline, cancel) while we verified: no work, nobody would read the answer
            if (call.cancelled) {
              finish(status.CANCELLED);
              return;
            }
            const response = await runWithContext(ctx, () => handler(call.request));
            finish(status.OK);
            callback(null, response);
          } catch (error) {
            const mapped = toServiceError(error);
            if (!isDomainError(error)) options.logger.error({ err: error, method: fullName }, 'unhandled error in gRPC handler');
            else if (REFUSED_TOKEN_CODES.has(error.code))
              options.logger.warn({ method: fullName, peer: call.getPeer(), reason: error.message }, 'gRPC call refused');
            finish(mapped.code);
            callback(mapped, null);
          }
        })();
      };
    }
    server.addService(binding.definition, implementation);
  }

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return {
    port,
    health,
    close: async (graceMs = 5000) => {
      for (const key of Object.keys(statusMap)) health.setStatus(key, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
