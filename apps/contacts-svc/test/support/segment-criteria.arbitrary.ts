import fc from 'fast-check';
import type { CustomFieldDefinitionValue, SegmentObjectName } from '@crm/contracts';
import { CRITERIA_FIELDS, MAX_CONDITIONS, MAX_DEPTH, OPS, type CriteriaNode } from '../../src/segment/segment.criteria.ts';

/** Custom field definitions of every type (the same for companies and contacts), keyed `t_<type>`. */
export const ARBITRARY_DEFINITIONS: Pick<CustomFieldDefinitionValue, 'key' | 'type' | 'options'>[] = [
  { key: 't_text', type: 'text', options: [] },
  { key: 't_url', type: 'url', options: [] },
  { key: 't_email', type: 'email', options: [] },
  { key: 't_number', type: 'number', options: [] },
  { key: 't_decimal', type: 'decimal', options: [] },
  { key: 't_date', type: 'date', options: [] },
  { key: 't_boolean', type: 'boolean', options: [] },
  { key: 't_select', type: 'select', options: ['gold', 'silver', 'it’s "quoted"'] },
  { key: 't_multiselect', type: 'multiselect', options: ['x', 'y', 'z{,}'] },
];

const KIND_OF_TYPE = {
  text: 'cf_text',
  url: 'cf_text',
  email: 'cf_text',
  number: 'cf_number',
  decimal: 'cf_decimal',
  date: 'cf_date',
  boolean: 'cf_boolean',
  select: 'cf_select',
  multiselect: 'cf_multiselect',
} as const;

/** Any text the format accepts (trimmed non-empty, no NUL, no lone surrogate), in all of Unicode. */
const text = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 20 }),
    fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }),
    fc.constantFrom('%', '_', '\\', "'", '"', '{', '}', ','),
  )
  .filter((s) => s.trim() !== '' && !s.includes('\u0000') && s.isWellFormed());
const list = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: 1, maxLength: 4 });
const date = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true });
const instant = fc.oneof(
  date.map((d) => d.toISOString()),
  date.map((d) => d.toISOString().slice(0, 10)),
);
const dateText = date.map((d) => d.toISOString().slice(0, 10));
const decimal = fc
  .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 28n - 1n }), fc.option(fc.integer({ min: 0, max: 9_999_999_999 })))
  .map(([neg, int, frac]) => `${neg ? '-' : ''}${int}${frac === null ? '' : `.${frac}`}`);
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });

/** A value valid for `op` on an operand of `kind` (see the criteria module's table). */
function valueFor(kind: string, op: string, field: { values?: readonly string[]; options?: readonly string[]; type?: string | null }): fc.Arbitrary<unknown> {
  if (op === 'is_empty') return fc.boolean();
  const one = (a: fc.Arbitrary<unknown>) => (op === 'in' || op === 'not_in' ? list(a) : op === 'between' ? fc.tuple(a, a) : a);
  switch (kind) {
    case 'tags':
      return list(fc.uuid());
    case 'enum':
      return one(fc.constantFrom(...(field.values ?? [])));
    case 'text':
    case 'id':
      return one(text);
    case 'instant':
      return op === 'within_days' || op === 'not_within_days' ? fc.integer({ min: 0, max: 36_500 }) : one(instant);
    case 'number':
    case 'cf_number':
      return one(finite);
    case 'cf_decimal':
      return one(decimal);
    case 'cf_date':
      return one(dateText);
    case 'cf_boolean':
      return fc.boolean();
    case 'cf_select':
      return one(fc.constantFrom(...(field.options ?? [])));
    case 'cf_multiselect':
      return one(fc.constantFrom(...(field.options ?? [])));
    case 'cf_text':
      if (op === 'contains') return text;
      return one(
        field.type === 'url' ? fc.webUrl({ validSchemes: ['https'] }) : field.type === 'email' ? fc.constantFrom('ada@example.com', 'x.y@acme.test') : text,
      );
    default:
      throw new Error(`no values for ${kind}`);
  }
}

/** A condition valid for `object`: any registry field of the object or custom field, any of its ops. */
export function conditionArbitrary(object: SegmentObjectName): fc.Arbitrary<CriteriaNode> {
  const registry = Object.entries(CRITERIA_FIELDS)
    .filter(([, f]) => f.objects.includes(object))
    .map(([name, f]) => ({ name, kind: f.type as string, field: { ...(f.values ? { values: f.values } : {}) } }));
  const custom = ARBITRARY_DEFINITIONS.map((d) => ({
    name: `cf.${d.key}`,
    kind: KIND_OF_TYPE[d.type!] as string,
    field: { options: d.options, type: d.type },
  }));
  return fc
    .constantFrom(...registry, ...custom)
    .chain(({ name, kind, field }) =>
      fc.constantFrom(...OPS[kind as keyof typeof OPS]).chain((op) => valueFor(kind, op, field).map((value) => ({ field: name, op, value }))),
    );
}

function conditions(node: CriteriaNode): number {
  return 'field' in node ? 1 : ('all' in node ? node.all : node.any).reduce((n, c) => n + conditions(c), 0);
}

/** Valid criteria for `object`: groups nested up to the limit, at most the limit of conditions. */
export function criteriaArbitrary(object: SegmentObjectName): fc.Arbitrary<CriteriaNode> {
  const condition = conditionArbitrary(object);
  const group = (depth: number): fc.Arbitrary<CriteriaNode> => {
    const item =
      depth < MAX_DEPTH ? fc.oneof({ weight: 3, arbitrary: condition }, { weight: 1, arbitrary: fc.constant(null).chain(() => group(depth + 1)) }) : condition;
    return fc.tuple(fc.boolean(), fc.array(item, { minLength: 1, maxLength: 3 })).map(([all, items]) => (all ? { all: items } : { any: items }));
  };
  return group(1).filter((c) => conditions(c) <= MAX_CONDITIONS);
}
