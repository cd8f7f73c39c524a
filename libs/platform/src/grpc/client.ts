import { credentials, type Metadata, type CallOptions, type Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { requireContext } from '../context.ts';
import { contextToMetadata } from './metadata.ts';
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

/**
 * Calls a unary method with the current request context as metadata and a deadline
 * (`deadlineMs`, default 5 s). Rejects with the service's {@link DomainError} (rebuilt from
 * trailers) or an `unavailable` one on transport failure. `extra` adds metadata entries.
 */
export function callUnary<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: { deadlineMs?: number; extra?: Record<string, string> } = {},
): Promise<Res> {
  const metadata = contextToMetadata(requireContext());
  for (const [k, v] of Object.entries(options.extra ?? {})) metadata.set(k, v);
  const deadline = new Date(Date.now() + (options.deadlineMs ?? DEFAULT_DEADLINE_MS));
  return new Promise<Res>((resolve, reject) => {
    method.call(client, request, metadata, { deadline }, (error, response) => (error ? reject(fromServiceError(error)) : resolve(response)));
  });
}

/** Insecure channel credentials: in-cluster traffic is plain gRPC (mTLS by the mesh, if any). */
export const insecure = (): ReturnType<typeof credentials.createInsecure> => credentials.createInsecure();
