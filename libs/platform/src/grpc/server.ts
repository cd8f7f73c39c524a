import {
  Server,
  ServerCredentials,
  status,
  type Metadata,
  type sendUnaryData,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { runWithContext } from '../context.ts';
import { DomainError, isDomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PlatformMetrics } from '../metrics.ts';
import type { InternalTokenVerifier } from './internal-token.ts';
import { bearerToken, contextFromMetadata } from './metadata.ts';
import { raiseStreamResetLimit, serverOptions } from './options.ts';
import { toServiceError } from './status.ts';

/**
 * Plain async handlers keyed by the ts-proto method name (e.g. `createCompany`), by the method's
 * kind: unary `(request) => Promise<response>`; client-streaming `(requests) => Promise<response>`
 * (the decoded messages as they arrive); server-streaming `(request) => AsyncIterable<response>`
 * (an async generator, written with backpressure). The request context is available via
 * `requireContext()` for the whole call. Throw {@link DomainError}s for expected failures.
 */
export type UnaryHandlers<S extends ServiceDefinition> = {
  [K in keyof S]: S[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? S[K] extends { requestStream: true }
      ? (requests: AsyncIterable<Req>) => Promise<Res>
      : S[K] extends { responseStream: true }
        ? (request: Req) => AsyncIterable<Res>
        : (request: Req) => Promise<Res>
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
/** A client-streaming handler: the decoded requests as they arrive → the one response. */
export type ClientStreamHandler = (requests: AsyncIterable<Record<string, unknown>>) => Promise<object>;
/** A server-streaming handler: the request → the responses, written in order with backpressure. */
export type ServerStreamHandler = (request: Record<string, unknown>) => AsyncIterable<object>;
/** Any handler {@link bindHandlers} accepts; which one a method needs follows its kind in the definition. */
export type AnyHandler = PlainHandler | ClientStreamHandler | ServerStreamHandler;

/** The kind of a method of a ts-proto definition, from its `requestStream` / `responseStream` flags. */
export function methodKind(definition: ServiceDefinition, method: string): 'unary' | 'clientStream' | 'serverStream' | 'bidi' {
  const m = definition[method] as { requestStream?: boolean; responseStream?: boolean } | undefined;
  if (m?.requestStream) return m.responseStream ? 'bidi' : 'clientStream';
  return m?.responseStream ? 'serverStream' : 'unary';
}

/**
 * Binds plain handlers by method name to a ts-proto service definition; the service's full name
 * comes from the definition's method paths (`/crm.contacts.v1.CompanyService/CreateCompany`).
 * Throws at boot when a handler names no method of the definition or a method has no handler.
 */
export function bindHandlers(definition: ServiceDefinition, handlers: Record<string, PlainHandler>): ServiceBinding;
/** Streaming methods need their handlers typed (`ClientStreamHandler`, `ServerStreamHandler`): an inline mix gets no contextual types. */
export function bindHandlers(definition: ServiceDefinition, handlers: Record<string, AnyHandler>): ServiceBinding;
export function bindHandlers(definition: ServiceDefinition, handlers: Record<string, AnyHandler>): ServiceBinding {
  const methods = Object.keys(definition);
  const missing = methods.filter((m) => !handlers[m]);
  const unknown = Object.keys(handlers).filter((h) => !methods.includes(h));
  if (missing.length || unknown.length)
    throw new Error(`handlers do not match the service: missing ${missing.join(', ') || '-'}, unknown ${unknown.join(', ') || '-'}`);
  const name = /^\/([^/]+)\//.exec(definition[methods[0] ?? '']?.path ?? '')?.[1] ?? '';
  const bidi = methods.find((m) => methodKind(definition, m) === 'bidi');
  if (bidi) throw new Error(`${bidi}: bidirectional streaming is not supported`);
  const wrapped: Record<string, (request: never) => unknown> = {};
  for (const [method, handle] of Object.entries(handlers)) {
    wrapped[method] =
      methodKind(definition, method) === 'clientStream'
        ? handle
        : (request: unknown) =>
            (handle as PlainHandler | ServerStreamHandler)(typeof request === 'object' && request !== null ? (request as Record<string, unknown>) : {});
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
 * settings of grpc/options.ts. Every call (unary or streaming; bidirectional ones are refused at
 * boot by {@link bindHandlers}) must carry an internal token for its service
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

  /** Verifies the call's token and builds its context; undefined (answered CANCELLED) when the caller has gone meanwhile. */
  const admit = async (binding: ServiceBinding, call: { metadata: Metadata; cancelled: boolean }) => {
    const identity = await options.verifier.verify(bearerToken(call.metadata), binding.name);
    const ctx = contextFromMetadata(call.metadata, identity);
    // the caller gave up (deadline, cancel) while we verified: no work, nobody would read the answer
    return call.cancelled ? undefined : ctx;
  };
  for (const binding of options.services) {
    const implementation: UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(binding.handlers) as [string, (req: unknown) => unknown][]) {
      const fullName = grpcMethodName(binding, method);
      const observe = (peer: () => string) => {
        const stopTimer = options.metrics.grpcDuration.startTimer({ method: fullName });
        const finish = (code: status) => {
          stopTimer();
          options.metrics.grpcRequests.inc({ method: fullName, code: status[code] ?? String(code) });
        };
        const fail = (error: unknown) => {
          const mapped = toServiceError(error);
          if (!isDomainError(error)) options.logger.error({ err: error, method: fullName }, 'unhandled error in gRPC handler');
          else if (REFUSED_TOKEN_CODES.has(error.code)) options.logger.warn({ method: fullName, peer: peer(), reason: error.message }, 'gRPC call refused');
          finish(mapped.code);
          return mapped;
        };
        return { finish, fail };
      };
      const kind = methodKind(binding.definition, method);
      if (kind === 'serverStream') {
        implementation[method] = (call: ServerWritableStream<unknown, unknown>) => {
          const { finish, fail } = observe(() => call.getPeer());
          void (async () => {
            try {
              const ctx = await admit(binding, call);
              if (!ctx) return finish(status.CANCELLED);
              await runWithContext(ctx, async () => {
                for await (const message of handler(call.request) as AsyncIterable<unknown>) {
                  if (call.cancelled) break; // leaving the loop returns the generator: its finally blocks run
                  if (!call.write(message)) await drainedOrCancelled(call);
                }
              });
              finish(call.cancelled ? status.CANCELLED : status.OK);
              if (!call.cancelled) call.end();
            } catch (error) {
              const mapped = fail(error);
              if (!call.cancelled) call.emit('error', mapped);
            }
          })();
        };
      } else if (kind === 'clientStream') {
        implementation[method] = (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const { finish, fail } = observe(() => call.getPeer());
          void (async () => {
            try {
              const ctx = await admit(binding, call);
              if (!ctx) return finish(status.CANCELLED);
              const response = await runWithContext(ctx, () => handler(incoming(call)) as Promise<unknown>);
              finish(status.OK);
              callback(null, response);
            } catch (error) {
              callback(fail(error), null);
            }
          })();
        };
      } else {
        implementation[method] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const { finish, fail } = observe(() => call.getPeer());
          void (async () => {
            try {
              const ctx = await admit(binding, call);
              if (!ctx) return finish(status.CANCELLED);
              const response = await runWithContext(ctx, () => handler(call.request) as Promise<unknown>);
              finish(status.OK);
              callback(null, response);
            } catch (error) {
              callback(fail(error), null);
            }
          })();
        };
      }
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

/** Resolves when a server stream can take more (`drain`) or its caller has gone (`cancelled`). */
function drainedOrCancelled(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
  });
}

/**
 * The messages of a client stream; throws `CALL_CANCELLED` when the stream stopped because the
 * caller cancelled (grpc-js then ends it like a completed one), so a handler never takes a
 * truncated upload for a whole one.
 */
async function* incoming(call: ServerReadableStream<unknown, unknown>): AsyncGenerator<unknown> {
  const cancelled = () => new DomainError('unavailable', 'CALL_CANCELLED', 'the caller cancelled the stream before its end');
  try {
    for await (const message of call) {
      if (call.cancelled) break;
      yield message;
    }
  } catch (error) {
    // a reset stream can also end the iteration with ERR_STREAM_PREMATURE_CLOSE (checked by code: Node's errors may come from another realm)
    if (call.cancelled || (error as { code?: unknown } | null)?.code === 'ERR_STREAM_PREMATURE_CLOSE') throw cancelled();
    throw error;
  }
  // Node's http2 ends the readable side of a reset stream before it reports the reset ('close'):
  // let that report arrive before taking the end for the caller's half-close
  if (!call.cancelled) await new Promise((resolve) => setImmediate(resolve));
  if (call.cancelled) throw cancelled();
}
