import { Decimal } from 'decimal.js';
import type { Money as ProtoMoney, PostalAddress } from '../gen/crm/common/v1/common.ts';

/**
 * The records kit's field vocabulary: what a stored field of an aggregate is — its kind and
 * limits — as plain data, declared once per aggregate (see record.ts). Values have ONE shape
 * outside the wire (REST JSON, domain, entity): absent is `null`, money `{ amount, currency }`, an
 * address five nullable strings. Only proto differs (proto3 `''`/unset), and {@link fromProto} /
 * {@link toProto} are the one place that converts.
 *
 * | kind      | proto type (ts-proto)  | value                | column                        |
 * | --------- | ---------------------- | -------------------- | ----------------------------- |
 * | text      | string                 | string (null unless `required` or `blank: ''`) | text |
 * | email     | string                 | string \| null, lower-cased (the suite's one e-mail rule) | text |
 * | int       | optional int32         | number \| null       | integer (+ check for min/max) |
 * | decimal   | string                 | string \| null       | numeric(precision, scale)     |
 * | money     | crm.common.v1.Money    | Money \| null        | `<f>_amount` numeric(19,4), `<f>_currency` varchar(3) |
 * | date      | string `YYYY-MM-DD`    | string \| null       | date                          |
 * | timestamp | Timestamp (Date)       | Date \| null         | timestamptz                   |
 * | bool      | bool (`optional bool` with `default`) | boolean; `default: true` when unset on create | boolean default false (or the `default`) |
 * | enum      | a proto enum           | lower-case name without the enum's prefix \| null (`ACCOUNT_TYPE_CUSTOMER` → `customer`; 0 = null) | text |
 * | ref       | string (uuid)          | string \| null; must name a live record of the caller's organization (`to` = entity name) | uuid + FK |
 * | owner     | string                 | string; default the caller; decides who may write | text |
 * | address   | PostalAddress          | Address \| null      | `<f>_street` … `<f>_country`  |
 * | tags      | repeated string        | string[] (uuids)     | uuid[]                        |
 * | json      | Struct                 | object \| null       | jsonb                         |
 * | strings   | repeated string        | string[] (at most `max` items of at most `itemMax` characters, trimmed, non-empty) | text[] default '{}' |
 * | value     | google.protobuf.Value  | any JSON value \| null (JSON null = absent) | jsonb                   |
 *
 * Options of every kind: `filter` (exact-match list filter, same-named list-request field),
 * `search` (matched by the list's `q`), `unique: '<CODE>'` (unique among live records; the 409
 * code), `caseInsensitive` (with `unique` on a text field: values equal but for case collide —
 * "VIP" and "vip" — through a unique index on `lower(column)`; stored as given), `description` (OpenAPI).
 */
export type FieldSpec = { description?: string; filter?: boolean; search?: boolean; unique?: string; caseInsensitive?: boolean } & (
  | {
      kind: 'text';
      max: number;
      required?: boolean;
      blank?: '';
      /**
       * Checked and stored canonical (schemas.ts): `domain` lower-cased domain name; `phone` E.164
       * (libphonenumber-js); `url` absolute http(s) URL; `language` BCP 47 tag; `timezone` IANA zone;
       * `country` ISO 3166-1 alpha-2. Not with `required`/`blank`.
       */
      format?: 'domain' | 'phone' | 'url' | 'language' | 'timezone' | 'country';
      /**
       * Output only: the text as the caller typed it for the `phone` field named here (E.164 loses
       * the caller's spacing and extension formatting; the original is kept beside it). Written by
       * the kit whenever that field is written; input for it is ignored.
       */
      originalOf?: string;
    }
  | { kind: 'int'; min?: number; max?: number }
  | { kind: 'decimal'; precision: number; scale: number }
  | { kind: 'enum'; values: Record<string, number> }
  | { kind: 'ref'; to: string }
  | { kind: 'email' }
  | { kind: 'money' }
  | { kind: 'date' }
  | { kind: 'timestamp' }
  | {
      kind: 'bool';
      /**
       * The value when a create leaves the field unset (default false). Only `true` needs saying,
       * and it needs an `optional bool` proto field: a plain proto3 bool cannot tell unset from false.
       */
      default?: boolean;
    }
  | { kind: 'owner' }
  | { kind: 'address' }
  | { kind: 'tags' }
  | { kind: 'json' }
  | { kind: 'strings'; max: number; itemMax: number }
  | { kind: 'value' }
);

/** Money (architecture "Data rules"): decimal string amount + ISO 4217 code. */
export interface Money {
  amount: string;
  currency: string;
}

/** A postal address; every part optional. */
export interface Address {
  street: string | null;
  city: string | null;
  region: string | null;
  postalCode: string | null;
  country: string | null;
}

type Of<K extends FieldSpec['kind']> = Extract<FieldSpec, { kind: K }>;

/**
 * The declarations that fit a proto field of TypeScript type `P` (as ts-proto renders it, without
 * `undefined`): a wrong kind does not compile. An enum field must name its own proto enum.
 */
export type FieldFor<P> = 0 extends 1 & P
  ? Of<'value'> // ts-proto renders google.protobuf.Value as `any`
  : [P] extends [string]
    ? Of<'text' | 'email' | 'decimal' | 'date' | 'ref' | 'owner'>
    : [P] extends [boolean]
      ? Of<'bool'>
      : [P] extends [number]
        ? number extends P
          ? Of<'int'>
          : Omit<Of<'enum'>, 'values'> & { values: Record<string, P> }
        : [P] extends [ProtoMoney]
          ? Of<'money'>
          : [P] extends [PostalAddress]
            ? Of<'address'>
            : [P] extends [Date]
              ? Of<'timestamp'>
              : [P] extends [string[]]
                ? Of<'tags' | 'strings'>
                : [P] extends [Record<string, unknown>]
                  ? Of<'json'>
                  : never;

/**
 * A field table for proto message `M`: one declaration per message field except `id` and `audit`,
 * of a kind that fits. A missing field, an extra entry (see `defineRecord`) or a wrong kind does
 * not compile.
 */
export type FieldTable<M> = { [K in Exclude<keyof M, 'id' | 'audit'>]-?: FieldFor<Exclude<M[K], undefined>> };

type UnspecifiedKey<E> = { [K in keyof E & string]: E[K] extends 0 ? K : never }[keyof E & string];
type EnumNames<E> = {
  [K in keyof E & string]: E[K] extends 0
    ? never
    : UnspecifiedKey<E> extends `${infer P}UNSPECIFIED`
      ? K extends `${P}${infer R}`
        ? Lowercase<R>
        : never
      : never;
}[keyof E & string];

/** The value (REST/domain/entity shape) of a declaration. */
export type ValueOf<F> = F extends { kind: 'text'; required: true } | { kind: 'text'; blank: '' } | { kind: 'owner' }
  ? string
  : F extends { kind: 'int' }
    ? number | null
    : F extends { kind: 'money' }
      ? Money | null
      : F extends { kind: 'address' }
        ? Address | null
        : F extends { kind: 'timestamp' }
          ? Date | null
          : F extends { kind: 'bool' }
            ? boolean
            : F extends { kind: 'tags' } | { kind: 'strings' }
              ? string[]
              : F extends { kind: 'value' }
                ? unknown
                : F extends { kind: 'json' }
                  ? Record<string, unknown> | null
                  : F extends { kind: 'enum'; values: infer E }
                    ? EnumNames<E> | null
                    : string | null;

/** The values of a whole field table. */
export type ValuesOf<T extends Record<string, FieldSpec>> = { -readonly [K in keyof T]: ValueOf<T[K]> };

/** REST/database names of a proto enum's values (`ACCOUNT_TYPE_CUSTOMER` → `customer`), 0 excluded. */
export function enumNames(values: Record<string, number>): string[] {
  const prefix = (Object.keys(values).find((k) => values[k] === 0) ?? '').replace(/UNSPECIFIED$/, '');
  return Object.keys(values)
    .filter((k) => values[k] !== 0 && k.startsWith(prefix))
    .map((k) => k.slice(prefix.length).toLowerCase());
}

/** True for the text kinds that are never null (absent = ''). */
export function isBlankText(spec: FieldSpec): boolean {
  return spec.kind === 'text' && (spec.required === true || spec.blank === '');
}

/**
 * Formats a decimal with at least 2 and at most 4 fraction digits ("1100040000.0000" →
 * "1100040000.00", "1.5" → "1.50", "0.1234" → "0.1234"). Exact (decimal.js): amounts carry at
 * most 4 fraction digits (`numeric(19,4)`), so nothing is rounded.
 */
export function formatAmount(amount: string): string {
  const d = new Decimal(amount);
  return d.toFixed(Math.max(2, Math.min(4, d.decimalPlaces())));
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const ADDRESS_PARTS = ['street', 'city', 'region', 'postalCode', 'country'] as const;

/**
 * A proto field value → the field's value (`''`/unset → null, enum number → name). Anything of the
 * wrong type becomes the empty value and is then caught by validation.
 */
export function fromProto(spec: FieldSpec, proto: unknown): unknown {
  switch (spec.kind) {
    case 'text':
      return isBlankText(spec) ? (typeof proto === 'string' ? proto : '') : str(proto);
    case 'owner':
      return typeof proto === 'string' ? proto : '';
    case 'int':
      return typeof proto === 'number' ? proto : null;
    case 'bool':
      return typeof proto === 'boolean' ? proto : (spec.default ?? false);
    case 'timestamp':
      return proto instanceof Date ? proto : null;
    case 'enum':
      return enumNames(spec.values).find((name) => enumNumber(spec, name) === proto) ?? null;
    case 'money': {
      const m = proto as Partial<ProtoMoney> | undefined;
      return m ? { amount: m.amount ?? '', currency: m.currency ?? '' } : null;
    }
    case 'address': {
      const a = proto as Partial<PostalAddress> | undefined;
      return a ? Object.fromEntries(ADDRESS_PARTS.map((p) => [p, str(a[p])])) : null;
    }
    case 'tags':
    case 'strings':
      return Array.isArray(proto) ? proto.filter((t) => typeof t === 'string') : [];
    case 'json':
      return typeof proto === 'object' && proto !== null && !Array.isArray(proto) ? proto : null;
    case 'value':
      return proto ?? null;
    default:
      return str(proto); // email, decimal, date, ref
  }
}

/** A field's value → its proto value (null → `''`/unset). Money amounts leave formatted ({@link formatAmount}). */
export function toProto(spec: FieldSpec, value: unknown): unknown {
  switch (spec.kind) {
    case 'int':
    case 'timestamp':
    case 'json':
    case 'value':
      return value ?? undefined;
    case 'bool':
      // null = unset, so that the service applies the declared default (create)
      return spec.default !== undefined && (value === null || value === undefined) ? undefined : value === true;
    case 'tags':
    case 'strings':
      return Array.isArray(value) ? value : [];
    case 'enum':
      return typeof value === 'string' ? enumNumber(spec, value) : 0;
    case 'money': {
      const m = value as Money | null;
      return m ? { amount: formatAmount(m.amount), currency: m.currency } : undefined;
    }
    case 'address': {
      const a = value as Address | null;
      return a && ADDRESS_PARTS.some((p) => a[p]) ? Object.fromEntries(ADDRESS_PARTS.map((p) => [p, a[p] ?? ''])) : undefined;
    }
    default:
      return typeof value === 'string' ? value : ''; // text, email, decimal, date, ref, owner
  }
}

function enumNumber(spec: Of<'enum'>, name: string): number {
  const prefix = (Object.keys(spec.values).find((k) => spec.values[k] === 0) ?? '').replace(/UNSPECIFIED$/, '');
  return spec.values[`${prefix}${name.toUpperCase()}`] ?? 0;
}

/** Exhaustiveness check for switches over kinds. */
export function assertNever(x: never): never {
  throw new Error(`unexpected field kind ${JSON.stringify(x)}`);
}
