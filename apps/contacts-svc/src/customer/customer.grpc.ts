import type { PlainHandler } from '@crm/platform';

/**
 * A handler of a decoded ts-proto request as the plain handler `bindRecordService` takes for a
 * service's further calls (grpc-js hands it the message ts-proto decoded, so the cast is the
 * message's own type).
 */
export function typedHandler<Req>(handle: (req: Req) => Promise<object>): PlainHandler {
  return (req) => handle(req as Req);
}

/** A proto `optional int64 expected_version` (a string, ts-proto `forceLong=string`) as a number; unset → undefined. */
export function expectedVersionOf(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}
