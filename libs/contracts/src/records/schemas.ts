import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { z } from 'zod';
import { assertNever, enumNames, formatAmount, isBlankText, type FieldSpec, type Money } from './fields.ts';

/**
 * The rules of each field kind as zod schemas over the value shape (null = absent). The gateway
 * validates REST bodies with them and the services normalise the fields a write changes with the
 * very same schemas, so each rule — e-mail, money, text limits — exists once in the suite.
 */

// Postgres text cannot hold NUL, and a lone surrogate has no UTF-8 encoding: refuse both (400)
// instead of failing at the database or being silently replaced.
const storable = (s: z.ZodString) => s.refine((v) => !v.includes('\u0000') && v.isWellFormed(), 'must not contain NUL characters or unpaired surrogates');

/** The number a phone text stands for, when it is in international format and of a possible length. */
const parsePhone = (text: string) => (/^\+[0-9 ().-]{4,40}$/.test(text) ? parsePhoneNumberFromString(text) : undefined);

/**
 * The suite's one phone rule: a number in international format (`+` and the country calling code;
 * spaces, dots, dashes and parentheses allowed), of a length possible for its country
 * (libphonenumber-js, Google's libphonenumber metadata). Numbers in national format are refused:
 * which country they belong to is not known here. The text passes unchanged — the owning service
 * stores {@link e164} of it and keeps the text as typed (see FieldSpec `originalOf`).
 */
export const phoneSchema = phoneRule();

// a new schema per field: one zod instance used by two fields would become a nameless shared
// definition in the OpenAPI document
function phoneRule(): z.ZodString {
  return z.string().refine((text) => parsePhone(text)?.isPossible() === true, 'must be a phone number in international format such as +1 415 555 0100');
}

/** E.164 form of a text {@link phoneSchema} accepted (`+1 (415) 555-0100` → `+14155550100`); throws otherwise. */
export function e164(text: string): string {
  const phone = parsePhone(text);
  if (!phone?.isPossible()) throw new Error(`not a phone number in international format: ${text}`);
  return phone.number;
}

/** `fallback: 'none'`: undefined for a code that names no region. */
const REGIONS = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'none' });

/** Canonical form of a text of each `format` (see FieldSpec), or undefined when it is not one. */
const FORMATS: Record<'url' | 'language' | 'timezone' | 'country', { normalise(text: string): string | undefined; message: string; example: string }> = {
  // absolute http(s) URL (WHATWG URL parser), as the parser serialises it
  url: {
    normalise: (text) => (URL.canParse(text) && /^https?:$/.test(new URL(text).protocol) ? new URL(text).href : undefined),
    message: 'must be an absolute http(s) URL such as https://acme.com',
    example: 'https://acme.com/',
  },
  // BCP 47 language tag, canonicalised by ECMA-402 (`en-us` → `en-US`)
  language: {
    normalise: (text) => {
      try {
        return Intl.getCanonicalLocales(text)[0];
      } catch {
        return undefined;
      }
    },
    message: 'must be a BCP 47 language tag such as en-US',
    example: 'en-US',
  },
  // IANA time zone (aliases accepted, stored canonical as ICU resolves them)
  timezone: {
    normalise: (text) => {
      try {
        return new Intl.DateTimeFormat('en', { timeZone: text }).resolvedOptions().timeZone;
      } catch {
        return undefined;
      }
    },
    message: 'must be an IANA time zone such as Europe/Berlin',
    example: 'Europe/Berlin',
  },
  // ISO 3166-1 alpha-2 region code that exists (ICU's list), upper-cased
  country: {
    normalise: (text) => (/^[A-Za-z]{2}$/.test(text) && REGIONS.of(text.toUpperCase()) ? text.toUpperCase() : undefined),
    message: 'must be an ISO 3166-1 alpha-2 country code such as DE',
    example: 'DE',
  },
};
// RFC 1035 labels, at least one dot, no scheme or path.
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

/** ISO 4217 codes this runtime knows (ICU's list), so a made-up code such as `XYZ` is refused. */
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

/**
 * The suite's one money rule (architecture "Data rules"): a decimal string with at most 15 integer
 * and 4 fraction digits (`numeric(19,4)`) and an existing upper-case ISO 4217 code. The amount is
 * normalised by {@link formatAmount} (2–4 fraction digits, never rounded).
 */
export const moneySchema = z
  .strictObject({
    amount: z.string().regex(/^-?\d{1,15}(\.\d{1,4})?$/, 'a decimal string such as "1250.00" (at most 15 integer and 4 fraction digits)'),
    currency: z.string().refine((c) => /^[A-Z]{3}$/.test(c) && CURRENCIES.has(c), 'an existing upper-case ISO 4217 code such as "USD"'),
  })
  .transform((m): Money => ({ amount: formatAmount(m.amount), currency: m.currency }))
  .meta({ id: 'Money', description: 'an amount of money: decimal string and ISO 4217 code', examples: [{ amount: '1250.00', currency: 'EUR' }] });

/**
 * The suite's one e-mail rule: WHATWG "valid e-mail address" syntax (what browsers accept, not
 * full RFC 5322), at most 254 characters (RFC 5321 path limit), trimmed and lower-cased.
 */
export const emailSchema = z
  .string()
  .trim()
  .max(254)
  .toLowerCase()
  .pipe(z.email({ pattern: z.regexes.html5Email, message: 'must be an e-mail address' }));

const part = (max: number) =>
  storable(z.string().trim().max(max))
    .nullish()
    .transform((s) => (s ? s : null));

const EXAMPLE_ADDRESS = { street: 'Friedrichstraße 68', city: 'Berlin', region: null, postalCode: '10117', country: 'DE' };

/**
 * Any JSON value (the `value` kind): string, finite number, boolean, array or object (null = absent,
 * see the nullable field schema). Not `z.json()`: its recursive schema has no OpenAPI component
 * form; the parts of an array or object are JSON already (they arrive as JSON or proto Value).
 */
export const jsonValueSchema = z
  .union([z.string(), z.number(), z.boolean(), z.array(z.unknown()), z.record(z.string(), z.unknown())])
  .meta({ id: 'JsonValue', description: 'any JSON value' });

/** Postal address; an address whose parts are all empty is no address (null). */
export const addressSchema = z
  .strictObject({ street: part(200), city: part(100), region: part(100), postalCode: part(20), country: part(100) })
  .transform((a) => (Object.values(a).every((p) => p === null) ? null : a))
  .meta({ id: 'PostalAddress', description: 'postal address; every part optional', examples: [EXAMPLE_ADDRESS] });

/**
 * The schema of one field's value (input side: what a client may send for it). Nullable kinds
 * accept null (= clear); text is trimmed and an empty optional text becomes null.
 */
export function fieldSchema(spec: FieldSpec): z.ZodType {
  let schema = built.get(spec);
  if (!schema) {
    schema = spec.description ? inputOf(spec).describe(spec.description) : inputOf(spec);
    built.set(spec, schema);
  }
  return schema;
}

// Declarations are constants: build each field's schema once, not on every write (≈8 % of a create's CPU).
const built = new WeakMap<FieldSpec, z.ZodType>();

function inputOf(spec: FieldSpec): z.ZodType {
  switch (spec.kind) {
    case 'text': {
      let s = storable(z.string().trim().max(spec.max));
      if (spec.format === 'domain') s = s.toLowerCase().regex(DOMAIN, 'must be a domain name such as example.com');
      const format = spec.format;
      if (format === 'phone' || (format && format !== 'domain')) {
        // an empty text clears the field; anything else must be of the format, stored canonical
        const canonical =
          format === 'phone'
            ? phoneRule()
            : z.string().transform((text, ctx) => {
                const value = FORMATS[format].normalise(text);
                if (value !== undefined) return value;
                ctx.addIssue({ code: 'custom', message: FORMATS[format].message });
                return z.NEVER;
              });
        return s
          .nullable()
          .pipe(z.union([z.literal('').transform(() => null), z.null(), canonical]))
          .transform((v) => v || null);
      }
      if (isBlankText(spec)) return spec.required ? s.min(1, 'is required') : s;
      return s.nullable().transform((v) => v || null);
    }
    case 'int':
      return z
        .int()
        .min(spec.min ?? -(2 ** 31))
        .max(spec.max ?? 2 ** 31 - 1)
        .nullable();
    case 'decimal': {
      const i = spec.precision - spec.scale;
      const message = `a decimal string with at most ${i} integer and ${spec.scale} fraction digits`;
      return z
        .string()
        .regex(new RegExp(`^-?\\d{1,${i}}(\\.\\d{1,${spec.scale}})?$`), message)
        .nullable();
    }
    case 'owner':
      return storable(z.string().min(1).max(100)).nullable();
    case 'bool':
      return z.boolean();
    case 'tags':
      return z.array(z.uuid()).max(100);
    case 'strings':
      return z.array(storable(z.string().trim().min(1, 'must not be empty').max(spec.itemMax))).max(spec.max);
    case 'timestamp':
      return z.coerce.date().nullable();
    default:
      return valueSchema(spec).nullable();
  }
}

/** The schema of a field's value as served (output side, for OpenAPI). */
export function fieldOutputSchema(spec: FieldSpec): z.ZodType {
  switch (spec.kind) {
    case 'text':
      return isBlankText(spec) ? z.string() : z.string().nullable();
    case 'int':
      return z.int().nullable();
    case 'decimal':
      return z.string().nullable();
    case 'owner':
      return z.string();
    case 'bool':
      return z.boolean();
    case 'tags':
      return z.array(z.uuid());
    case 'strings':
      return z.array(z.string());
    case 'timestamp':
      return z.iso.datetime().nullable();
    default:
      return valueSchema(spec).nullable();
  }
}

/** The kinds whose input and output schemas are the same. */
function valueSchema(spec: Exclude<FieldSpec, { kind: 'text' | 'int' | 'decimal' | 'owner' | 'bool' | 'tags' | 'strings' | 'timestamp' }>): z.ZodType {
  switch (spec.kind) {
    case 'email':
      return emailSchema;
    case 'money':
      return moneySchema;
    case 'address':
      return addressSchema;
    case 'date':
      return z.iso.date();
    case 'enum':
      return z.enum(enumNames(spec.values) as [string, ...string[]]);
    case 'ref':
      return z.uuid();
    case 'json':
      return z.record(z.string(), z.unknown());
    case 'value':
      return jsonValueSchema;
    default:
      return assertNever(spec);
  }
}

/** A record id in examples (UUIDv7, as the services generate them). */
export const EXAMPLE_RECORD_ID = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10';
/** A Keycloak user id in examples. */
export const EXAMPLE_USER_ID = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';

/** `jobTitle` → `Example job title`. */
function exampleText(key: string, max: number): string {
  return `Example ${key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase()}`.slice(0, max);
}

/**
 * An example value of field `key` (OpenAPI), derived from its kind: valid as input (create and
 * patch bodies) and shaped as served (money `{ amount: "1250.00", currency: "EUR" }`, ids UUIDv7,
 * instants ISO 8601 UTC). Plain text is named after the field.
 */
export function fieldExample(key: string, spec: FieldSpec): unknown {
  switch (spec.kind) {
    case 'text':
      if (spec.format === 'domain') return 'acme.com';
      if (spec.format === 'phone') return '+14155550100';
      if (spec.format) return FORMATS[spec.format].example;
      return exampleText(key, spec.max);
    case 'email':
      return 'ada.lovelace@example.com';
    case 'int':
      return Math.min(Math.max(120, spec.min ?? -(2 ** 31)), spec.max ?? 2 ** 31 - 1);
    case 'decimal': {
      const integer = '12'.slice(0, Math.max(1, spec.precision - spec.scale));
      return spec.scale ? `${integer}.${'5'.padEnd(spec.scale, '0')}` : integer;
    }
    case 'money':
      return { amount: '1250.00', currency: 'EUR' };
    case 'address':
      return EXAMPLE_ADDRESS;
    case 'date':
      return '2026-11-21';
    case 'timestamp':
      return '2026-11-21T09:30:00.000Z';
    case 'bool':
      return true;
    case 'enum':
      return enumNames(spec.values)[0] ?? null;
    case 'ref':
      return EXAMPLE_RECORD_ID;
    case 'owner':
      return EXAMPLE_USER_ID;
    case 'tags':
      return [EXAMPLE_RECORD_ID];
    case 'json':
      return { source: 'import' };
    case 'strings':
      return ['Gold', 'Silver'];
    case 'value':
      return 'Gold';
    default:
      return assertNever(spec);
  }
}
