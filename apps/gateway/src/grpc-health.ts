import { makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { insecure } from '@crm/platform';

/** A grpc.health.v1 client for readiness: `serving()` resolves true when the target answers SERVING. */
export function grpcHealthClient(address: string): { serving(): Promise<boolean>; close(): void } {
  const Ctor = makeGenericClientConstructor(healthService, 'Health');
  const client = new Ctor(address, insecure()) as unknown as {
    check(req: { service: string }, opts: { deadline: Date }, cb: (err: ServiceError | null, res: { status: string | number }) => void): void;
    close(): void;
  };
  return {
    serving: () =>
      new Promise<boolean>((resolve) => {
        client.check({ service: '' }, { deadline: new Date(Date.now() + 1000) }, (err, res) => resolve(!err && (res.status === 'SERVING' || res.status === 1)));
      }),
    close: () => client.close(),
  };
}
