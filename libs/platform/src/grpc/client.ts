import { AsyncLocalStorage } from 'node:async_hooks';
import { credentials, type CallOptions, type ChannelInterface, type Client, type ClientUnaryCall, type Metadata, type ServiceError } from '@grpc/grpc-js';
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

/** Default per-call deadline; every call has one. */
export const DEFAULT_DEADLINE_MS = 5000;

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
  const ctx = requireContext();
  const channel = client.getChannel();
  const signer = channelSigners.get(channel) ?? scopedSigner.getStore();
  if (!signer) throw new Error('no internal-token signer for this call: signCallsOn(channel, signer) or runWithSigner(signer, fn)');
  const metadata = contextToMetadata(ctx, await signer.tokenFor(ctx, audienceOf(method)));
  for (const [k, v] of Object.entries(options.extra ?? {})) metadata.set(k, v);

  const running = callsInFlight.get(channel) ?? 0;
  if (running >= MAX_CALLS_IN_FLIGHT) {
    throw new DomainError('unavailable', 'TOO_MANY_CALLS_IN_FLIGHT', `${running} calls already in flight on this channel`);
  }
  callsInFlight.set(channel, running + 1);
  try {
    return await new Promise<Res>((resolve, reject) => {
      method.call(client, request, metadata, { deadline }, (error, response) => (error ? reject(fromServiceError(error)) : resolve(response)));
    });
  } finally {
    callsInFlight.set(channel, (callsInFlight.get(channel) ?? 1) - 1);
  }
}

/** Insecure channel credentials: in-cluster traffic is plain gRPC (mTLS by the mesh, if any); callers authenticate with internal tokens. */
export const insecure = (): ReturnType<typeof credentials.createInsecure> => credentials.createInsecure();
