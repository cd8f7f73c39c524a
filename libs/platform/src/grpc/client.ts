import { AsyncLocalStorage } from 'node:async_hooks';
import {
  credentials,
  type CallOptions,
  type ChannelInterface,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  type Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { requireContext } from '../context.ts';
import { DomainError } from '../errors.ts';
import type { InternalTokenSigner } from './internal-token.ts';
import { contextToMetadata } from './metadata.ts';
import { MAX_CALLS_IN_FLIGHT } from './options.ts';
import { fromServiceError } from './status.ts';

/** A ts-proto grpc-js unary client method (the 4-argument overload). */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** A ts-proto grpc-js client-streaming method (the metadata, options, callback overload). */
export type ClientStreamMethod<Req, Res> = (
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientWritableStream<Req>;

/** A ts-proto grpc-js server-streaming method (the request, metadata, options overload). */
export type ServerStreamMethod<Req, Res> = (request: Req, metadata?: Metadata, options?: Partial<CallOptions>) => ClientReadableStream<Res>;

/** Default per-call deadline; every call has one. */
export const DEFAULT_DEADLINE_MS = 5000;
/** Default deadline of a streaming call (uploads, downloads, exports): 10 minutes. */
export const DEFAULT_STREAM_DEADLINE_MS = 600_000;

const channelSigners = new WeakMap<ChannelInterface, InternalTokenSigner>();
const scopedSigner = new AsyncLocalStorage<InternalTokenSigner>();
const callsInFlight = new WeakMap<ChannelInterface, number>();

/**
 * Makes every {@link callUnary} over `channel` carry internal tokens from `signer`. The gateway
 * does this once per backend channel (a client shares its channel with `channelOverride`).
 */
export function signCallsOn(channel: ChannelInterface, signer: InternalTokenSigner): void {
  channelSigners.set(channel, signer);
}

/**
 * Runs `fn` with `signer` signing the {@link callUnary} calls it makes over channels that have no
 * signer of their own (tests' `asAdminOf`, tools calling services directly).
 */
export function runWithSigner<T>(signer: InternalTokenSigner, fn: () => T): T {
  return scopedSigner.run(signer, fn);
}

/**
 * The audience of a call: the fully-qualified gRPC service in the method's path
 * (`/crm.contacts.v1.CompanyService/CreateCompany` → `crm.contacts.v1.CompanyService`). grpc-js
 * attaches `path` to every generated client method. Throws when `method` has none.
 */
export function audienceOf(method: object): string {
  const path = (method as { path?: unknown }).path;
  const service = typeof path === 'string' ? /^\/([^/]+)\/[^/]+$/.exec(path)?.[1] : undefined;
  if (!service) throw new Error('not a grpc-js client method (no `path`): cannot tell which service the call is for');
  return service;
}

/**
 * Calls a unary method as the current request context with a deadline (`deadlineMs`, default
 * 5 s): the context travels as an internal token for the called service (signed by the channel's
 * signer, else the one of {@link runWithSigner}; a plain Error when there is neither). Rejects
 * with the service's {@link DomainError} (rebuilt from trailers), an `unavailable` one on
 * transport failure, or `unavailable` / `TOO_MANY_CALLS_IN_FLIGHT` without calling when the
 * channel already has {@link MAX_CALLS_IN_FLIGHT} calls open. `extra` adds metadata entries.
 */
export async function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: { deadlineMs?: number; extra?: Record<string, string> } = {},
): Promise<Res> {
  const deadline = new Date(Date.now() + (options.deadlineMs ?? DEFAULT_DEADLINE_MS));
  const metadata = await callMetadata(client, method, options.extra);
  const release = occupySlot(client.getChannel());
  try {
    return await new Promise<Res>((resolve, reject) => {
      method.call(client, request, metadata, { deadline }, (error, response) => (error ? reject(fromServiceError(error)) : resolve(response)));
    });
  } finally {
    release();
  }
}

/**
 * Calls a client-streaming method as the current request context (token, deadline — default
 * {@link DEFAULT_STREAM_DEADLINE_MS} — and in-flight limit as {@link callUnary}): writes every
 * message of `requests` in order with backpressure, then half-closes and resolves with the
 * response. When `requests` throws (e.g. a refused upload), the call is cancelled and the promise
 * rejects with that error; when the service answers early (an error), reading `requests` stops and
 * the promise rejects with the service's {@link DomainError}.
 */
export async function callClientStream<Req, Res>(
  client: Client,
  method: ClientStreamMethod<Req, Res>,
  requests: AsyncIterable<Req>,
  options: { deadlineMs?: number; extra?: Record<string, string> } = {},
): Promise<Res> {
  const deadline = new Date(Date.now() + (options.deadlineMs ?? DEFAULT_STREAM_DEADLINE_MS));
  const metadata = await callMetadata(client, method, options.extra);
  const release = occupySlot(client.getChannel());
  try {
    let answered = false;
    let call: ClientWritableStream<Req> | undefined;
    const response = new Promise<Res>((resolve, reject) => {
      call = method.call(client, metadata, { deadline }, (error, res) => {
        answered = true;
        if (error) reject(fromServiceError(error));
        else resolve(res);
      });
    });
    const writing = (async () => {
      const stream = call as ClientWritableStream<Req>;
      for await (const message of requests) {
        if (answered) break; // the service has answered (an error): the rest would go nowhere
        if (!stream.write(message)) await untilDrained(stream, () => answered);
      }
      if (!answered) stream.end();
    })();
    // a failing source (refused upload) wins over the CANCELLED it causes
    await writing.catch((error: unknown) => {
      call?.cancel();
      response.catch(() => undefined);
      throw error;
    });
    return await response;
  } finally {
    release();
  }
}

/**
 * Calls a server-streaming method as the current request context (token, deadline — default
 * {@link DEFAULT_STREAM_DEADLINE_MS} — and in-flight limit as {@link callUnary}) and yields its
 * responses as they arrive (backpressure reaches the service). A service error is thrown as its
 * {@link DomainError}; leaving the loop early cancels the call. Nothing is sent until the first
 * message is requested.
 */
export async function* callServerStream<Req, Res>(
  client: Client,
  method: ServerStreamMethod<Req, Res>,
  request: Req,
  options: { deadlineMs?: number; extra?: Record<string, string> } = {},
): AsyncGenerator<Res, void, undefined> {
  const deadline = new Date(Date.now() + (options.deadlineMs ?? DEFAULT_STREAM_DEADLINE_MS));
  const metadata = await callMetadata(client, method, options.extra);
  const release = occupySlot(client.getChannel());
  const call = method.call(client, request, metadata, { deadline });
  let ended = false;
  try {
    try {
      for await (const message of call as AsyncIterable<Res>) yield message;
      ended = true;
    } catch (error) {
      ended = true;
      throw typeof error === 'object' && error !== null && 'code' in error ? fromServiceError(error as ServiceError) : error;
    }
  } finally {
    if (!ended) call.cancel();
    release();
  }
}

/** The metadata of a call as the current request context: internal token for `method`'s service, request id, `extra`. */
async function callMetadata(client: Client, method: object, extra: Record<string, string> = {}): Promise<Metadata> {
  const ctx = requireContext();
  const signer = channelSigners.get(client.getChannel()) ?? scopedSigner.getStore();
  if (!signer) throw new Error('no internal-token signer for this call: signCallsOn(channel, signer) or runWithSigner(signer, fn)');
  const metadata = contextToMetadata(ctx, await signer.tokenFor(ctx, audienceOf(method)));
  for (const [k, v] of Object.entries(extra)) metadata.set(k, v);
  return metadata;
}

/** Takes one of the channel's {@link MAX_CALLS_IN_FLIGHT} slots (throws `unavailable` when none is free); returns its release. */
function occupySlot(channel: ChannelInterface): () => void {
  const running = callsInFlight.get(channel) ?? 0;
  if (running >= MAX_CALLS_IN_FLIGHT) {
    throw new DomainError('unavailable', 'TOO_MANY_CALLS_IN_FLIGHT', `${running} calls already in flight on this channel`);
  }
  callsInFlight.set(channel, running + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    callsInFlight.set(channel, (callsInFlight.get(channel) ?? 1) - 1);
  };
}

/** Resolves when `stream` can take more writes, or at once when `stop()` says the call is over. */
function untilDrained<Req>(stream: ClientWritableStream<Req>, stop: () => boolean): Promise<void> {
  if (stop()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('status', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('status', done); // the call ended (answered or failed): no drain will come
  });
}

/** Insecure channel credentials: in-cluster traffic is plain gRPC (mTLS by the mesh, if any); callers authenticate with internal tokens. */
export const insecure = (): ReturnType<typeof credentials.createInsecure> => credentials.createInsecure();
