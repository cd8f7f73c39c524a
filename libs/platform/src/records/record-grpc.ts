import { fromProto, messageValues, recordMethods, snakeCase, type FieldSpec } from '@crm/contracts';
import { DomainError } from '../errors.ts';
import { bindHandlers, type ServiceBinding } from '../grpc/server.ts';
import type { RecordInput, RecordService } from './record-service.ts';

/**
 * The gRPC edge of a record service: its five calls (`create<Name>`, `get<Name>`, `list<Plural>`,
 * `update<Name>`, `delete<Name>`) bound to the {@link RecordService}, proto ⇄ values through the
 * kit's one conversion. Update masks are proto field names (AIP-161); an unknown path or an empty
 * mask is INVALID_ARGUMENT (`INVALID_UPDATE_MASK`).
 */
export function bindRecordService<F extends Record<string, FieldSpec>>(service: RecordService<F>): ServiceBinding {
  const r = service.record;
  const m = recordMethods(r);
  const byPath = new Map(Object.keys(r.fields).map((k) => [snakeCase(k), k]));
  const input = (message: unknown): RecordInput<F> => {
    if (typeof message !== 'object' || message === null)
      throw new DomainError('invalid_argument', 'VALIDATION_FAILED', `${r.name} is required`, [{ field: r.name, message: 'is required' }]);
    return messageValues(r, message as Record<string, unknown>);
  };
  const mask = (paths: unknown): (keyof F & string)[] => {
    const keys = (Array.isArray(paths) ? paths : []).map((path: unknown) => {
      const key = typeof path === 'string' ? byPath.get(path) : undefined;
      if (!key)
        throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', `cannot update ${String(path)}`, [
          { field: String(path), message: 'not an updatable field' },
        ]);
      return key;
    });
    if (keys.length === 0)
      throw new DomainError('invalid_argument', 'INVALID_UPDATE_MASK', 'update mask is empty', [{ field: 'updateMask', message: 'name at least one field' }]);
    return keys;
  };
  const version = (v: unknown): number | undefined => (typeof v === 'string' ? Number(v) : undefined);
  const one = async (row: Parameters<typeof service.toMessage>[0]) => ({ [r.name]: service.toMessage(row) });

  return bindHandlers(r.service, {
    [m.create]: async (req) => one(await service.create(input(req[r.name]))),
    [m.get]: async (req) => one(await service.get(String(req['id'] ?? ''))),
    [m.list]: async (req) => {
      const filters = Object.fromEntries(
        Object.entries(r.fields)
          .filter(([, spec]) => spec.filter)
          .map(([key, spec]) => [key, fromProto(spec, req[key])]),
      );
      const page = await service.list({
        pageSize: typeof req['pageSize'] === 'number' ? req['pageSize'] : undefined,
        cursor: typeof req['pageToken'] === 'string' && req['pageToken'] ? req['pageToken'] : undefined,
        query: typeof req['query'] === 'string' && req['query'] ? req['query'] : undefined,
        filters,
      });
      return { [r.plural]: page.items.map((row) => service.toMessage(row)), nextPageToken: page.nextCursor ?? '' };
    },
    [m.update]: async (req) => {
      const message = input(req[r.name]);
      const id = String((req[r.name] as Record<string, unknown> | undefined)?.['id'] ?? '');
      return one(await service.update(id, message, mask(req['updateMask']), version(req['expectedVersion'])));
    },
    [m.delete]: async (req) => {
      await service.delete(String(req['id'] ?? ''), version(req['expectedVersion']));
      return {};
    },
  });
}
