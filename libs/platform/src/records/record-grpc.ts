import { fromProto, messageValues, recordMethods, snakeCase, timeFields, timeRangeParams, type FieldSpec, type RecordDeclaration } from '@crm/contracts';
import { DomainError } from '../errors.ts';
import { bindHandlers, type AnyHandler, type PlainHandler, type ServiceBinding } from '../grpc/server.ts';
import type { RecordInput, RecordListQuery, RecordService } from './record-service.ts';

/**
 * The gRPC edge of a record service: its five calls (`create<Name>`, `get<Name>`, `list<Plural>`,
 * `update<Name>`, `delete<Name>`) bound to the {@link RecordService}, proto ⇄ values through the
 * kit's one conversion. Update masks are proto field names (AIP-161); an unknown path or an empty
 * mask is INVALID_ARGUMENT (`INVALID_UPDATE_MASK`). `extra` binds the service's further calls
 * (e.g. `getCompanyHierarchy`) by ts-proto method name, so one binding serves the whole service.
 */
export function bindRecordService<F extends Record<string, FieldSpec>>(service: RecordService<F>, extra: Record<string, AnyHandler> = {}): ServiceBinding {
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

  const calls: Record<string, PlainHandler> = {
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
        ...listConditions(r, req),
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
  };
  return bindHandlers(r.service, { ...extra, ...calls });
}

/** `last_contacted_at desc` → `{ name: 'lastContactedAt', desc: true }` (AIP-132 `order_by`). */
function orderBy(text: unknown): RecordListQuery['sort'] {
  if (typeof text !== 'string' || !text.trim()) return undefined;
  const [field = '', direction = 'asc', ...rest] = text.trim().split(/\s+/);
  if (rest.length || !['asc', 'desc'].includes(direction)) {
    throw new DomainError('invalid_argument', 'INVALID_LIST_QUERY', `order_by ${text}: "<field>" or "<field> desc"`, [
      { field: 'sort', message: 'a sort name, optionally descending' },
    ]);
  }
  return { name: field.replace(/_([a-z])/g, (_m: string, c: string) => c.toUpperCase()), desc: direction === 'desc' };
}

/**
 * The kit's list conditions from a list request, by the proto naming convention: `order_by`,
 * `tags` + `tags_match_all`, `custom_fields` (map), `<time>_after` / `<time>_before` for
 * created_at, updated_at and every `timestamp` field, `<address>_city` / `<address>_country` for
 * `address` fields with `filter`. Fields a request message does not have are simply absent.
 */
function listConditions(r: RecordDeclaration, req: Record<string, unknown>): Partial<RecordListQuery> {
  const ranges: Record<string, { after?: Date | undefined; before?: Date | undefined }> = {};
  for (const key of timeFields(r)) {
    const names = timeRangeParams(key);
    const [after, before] = [req[names.after], req[names.before]];
    if (after instanceof Date || before instanceof Date)
      ranges[key] = { after: after instanceof Date ? after : undefined, before: before instanceof Date ? before : undefined };
  }
  const addressParts: Record<string, string> = {};
  for (const [key, spec] of Object.entries(r.fields)) {
    if (spec.kind !== 'address' || !spec.filter) continue;
    for (const part of ['city', 'country'] as const) {
      const value = req[`${key}${part === 'city' ? 'City' : 'Country'}`];
      if (typeof value === 'string' && value) addressParts[`${key}.${part}`] = value;
    }
  }
  const customFields = req['customFields'];
  return {
    sort: orderBy(req['orderBy']),
    tags: Array.isArray(req['tags']) ? req['tags'].filter((t): t is string => typeof t === 'string') : undefined,
    tagsMatchAll: req['tagsMatchAll'] === true,
    customFields: typeof customFields === 'object' && customFields !== null ? (customFields as Record<string, string>) : undefined,
    ranges,
    addressParts,
  };
}
