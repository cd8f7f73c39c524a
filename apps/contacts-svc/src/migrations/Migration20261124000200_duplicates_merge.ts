import { Migration } from '@mikro-orm/migrations';

/**
 * Duplicate detection and undoable merges (issue 8), see apps/contacts-svc/src/duplicate/ and
 * apps/contacts-svc/src/merge/:
 *
 * - `merged_into_id` on company and contact: the survivor a merged (soft-deleted) record went into.
 * - Matching keys as immutable functions (so they can be indexed, and the very same function
 *   normalises a draft in the candidate query): `crm_email_key`, `crm_domain_key`,
 *   `crm_company_domain_key`, `crm_person_name_key`, `crm_company_name_key` (rules in
 *   duplicate/duplicate.rules.ts, which documents them).
 * - Blocking indexes on live rows: e-mail key, phone and mobile (contacts), web domain key, e-mail
 *   key and phone (companies), and the name blocks — (organization, company, name key) of
 *   contacts and (organization, lower(city), name key) of companies, including the name columns
 *   so that the name arm of the candidate query is an index-only scan.
 * - `duplicate_pair`: the scored pairs lists read, kept by the duplicate scan worker;
 *   `duplicate_scan_queue`: records to rescan (with the scan's failed `attempts`, its
 *   `last_error`, and `parked_at` once it gave up on an entry), filled by statement-level triggers on company and
 *   contact (one insert per statement, whatever its row count, of one queue row per organization
 *   and 500 records; only rows whose matching columns or liveness changed) — every write path
 *   (record service, merges, imports, raw updates) is covered. Every live record existing now is
 *   queued once.
 * - `duplicate_settings`: the organization's likely-duplicate threshold.
 * - `record_merge`: one row per merge with the snapshot its undo restores from.
 */
/** Legal forms a company name key drops from the end (folded, without dots: "S.A." is `sa`). */
const LEGAL_FORMS = [
  'inc',
  'incorporated',
  'corp',
  'corporation',
  'co',
  'company',
  'ltd',
  'limited',
  'llc',
  'llp',
  'lp',
  'plc',
  'gmbh',
  'mbh',
  'ag',
  'kg',
  'kgaa',
  'ohg',
  'ug',
  'ev',
  'sa',
  'sas',
  'sarl',
  'sl',
  'srl',
  'spa',
  'bv',
  'nv',
  'oy',
  'oyj',
  'ab',
  'as',
  'asa',
  'aps',
  'pty',
  'pvt',
  'pte',
  'kk',
  'sro',
  'kft',
  'doo',
  'ooo',
  'group',
  'holding',
  'holdings',
];

export class Migration20261124000200DuplicatesMerge extends Migration {
  override name = 'Migration20261124000200_duplicates_merge';

  override up(): void {
    const live = 'where deleted_at is null';
    this.addSql('alter table company add column merged_into_id text null');
    this.addSql('alter table contact add column merged_into_id text null');

    // e-mail key: lower-cased and trimmed; gmail.com/googlemail.com without dots and +tag; the
    // +tag of providers that document sub-addressing dropped; null for a text without local part.
    // One expression (the SQL function is inlined: 0.7 µs a call, where a subquery body cost 14 µs)
    const domain = `rtrim(lower(split_part(btrim(email), '@', -1)), '.')`;
    const local = `left(lower(btrim(email)), -length(split_part(btrim(email), '@', -1)) - 1)`;
    const plus = [
      'outlook.com',
      'hotmail.com',
      'live.com',
      'msn.com',
      'icloud.com',
      'me.com',
      'mac.com',
      'fastmail.com',
      'fastmail.fm',
      'proton.me',
      'protonmail.com',
      'pm.me',
    ];
    this.addSql(`create function crm_email_key(email text) returns text language sql immutable parallel safe
      return case
        when strpos(email, '@') < 2 then null
        when ${domain} in ('gmail.com', 'googlemail.com') then coalesce(nullif(replace(split_part(${local}, '+', 1), '.', ''), ''), ${local}) || '@gmail.com'
        when ${domain} in (${plus.map((d) => `'${d}'`).join(', ')}) then coalesce(nullif(split_part(${local}, '+', 1), ''), ${local}) || '@' || ${domain}
        else ${local} || '@' || ${domain}
      end`);
    // host of a domain or URL: lower-cased, without scheme, user info, path, query, fragment, port,
    // trailing dots and a leading "www."
    this.addSql(`create function crm_domain_key(url text) returns text language sql immutable parallel safe strict
      return nullif(
        regexp_replace(
          regexp_replace(
            regexp_replace(
              regexp_replace(lower(btrim(url)), '^[a-z][a-z0-9+.-]*://', ''),
            '[/?#\\\\].*$', ''),
          '^[^@]*@', ''),
        '^www\\.|:[0-9]*$|\\.+$', '', 'g'),
      '')`);
    // a company's web identity: its domain, else its website's host
    this.addSql(`create function crm_company_domain_key(domain text, website text) returns text language sql immutable parallel safe
      return coalesce(crm_domain_key(domain), crm_domain_key(website))`);
    // "first last", folded (crm_fold: lower, unaccented); trigrams ignore punctuation and spacing.
    // The name keys are PARALLEL UNSAFE on purpose: every candidate statement uses one, and that
    // keeps it serial — its arms are a few index probes, yet the planner (not knowing the probe's
    // values) may pick a parallel plan whose worker start-up costs 5–10 ms (measured: 17 → 9 ms).
    this.addSql(`create function crm_person_name_key(first_name text, last_name text) returns text language sql immutable parallel unsafe
      return nullif(btrim(crm_fold(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))), '')`);
    // company name folded, dots dropped (S.A. → sa), other punctuation as spaces, trailing legal
    // forms removed (never the first word): 8 µs a call, where one regular expression cost 20 µs
    this.addSql(`create function crm_company_name_strip(words text) returns text language plpgsql immutable parallel safe strict as $$
      declare
        w text[] := string_to_array(words, ' ');
        n int := cardinality(w);
      begin
        while n > 1 and w[n] = any('{${LEGAL_FORMS.join(',')}}'::text[]) loop
          n := n - 1;
        end loop;
        return array_to_string(w[1:n], ' ');
      end $$`);
    this.addSql(`create function crm_company_name_key(name text) returns text language sql immutable parallel unsafe
      return crm_company_name_strip(btrim(regexp_replace(regexp_replace(replace(crm_fold(name), '.', ''), '[[:punct:]]', ' ', 'g'), '\\s+', ' ', 'g')))`);

    this.addSql(`create index contact_email_key_idx on contact (organization_id, crm_email_key(email)) ${live}`);
    this.addSql(`create index contact_phone_idx on contact (organization_id, phone) ${live}`);
    this.addSql(`create index contact_mobile_idx on contact (organization_id, mobile) ${live}`);
    this.addSql(`create index company_domain_key_idx on company (organization_id, crm_company_domain_key(domain, website)) ${live}`);
    this.addSql(`create index company_email_key_idx on company (organization_id, crm_email_key(email)) ${live}`);
    this.addSql(`create index company_phone_idx on company (organization_id, phone) ${live}`);
    // the name blocks, read index-only: the stored name key is compared without computing it per row
    this.addSql(
      `create index contact_name_key_idx on contact (organization_id, company_id, crm_person_name_key(first_name, last_name)) include (first_name, last_name, id) ${live} and company_id is not null`,
    );
    this.addSql(
      `create index company_name_key_idx on company (organization_id, lower(address_city), crm_company_name_key(name)) include (name, address_city, id) ${live}`,
    );

    this.addSql(`create table duplicate_pair (
      organization_id uuid not null,
      object text not null,
      record_id uuid not null,
      duplicate_id uuid not null,
      score integer not null,
      reasons jsonb not null,
      computed_at timestamptz not null,
      primary key (organization_id, object, record_id, duplicate_id)
    )`);
    this.addSql('create index duplicate_pair_score_idx on duplicate_pair (organization_id, object, score, record_id, duplicate_id)');
    this.addSql('create index duplicate_pair_duplicate_idx on duplicate_pair (organization_id, object, duplicate_id)');
    // one row per statement, organization and 500 records: a bulk insert queues its records in a few rows
    this.addSql(`create table duplicate_scan_queue (
      id uuid not null default gen_random_uuid(),
      organization_id uuid not null,
      object text not null,
      record_ids uuid[] not null,
      queued_at timestamptz not null default clock_timestamp(),
      attempts integer not null default 0,
      last_error text null,
      parked_at timestamptz null,
      primary key (id)
    )`);
    // the scan's claim: the oldest entries of one organization and object still to do (not parked)
    this.addSql('create index duplicate_scan_queue_group_idx on duplicate_scan_queue (organization_id, object, queued_at) where parked_at is null');
    this.addSql('create index duplicate_scan_queue_queued_idx on duplicate_scan_queue (queued_at)');
    this.addSql(`create table duplicate_settings (
      organization_id uuid not null,
      threshold integer not null,
      updated_at timestamptz not null,
      updated_by text not null,
      version integer not null default 1,
      primary key (organization_id),
      constraint duplicate_settings_threshold_check check (threshold >= 1 and threshold <= 100)
    )`);
    this.addSql(`create table record_merge (
      id uuid not null,
      organization_id uuid not null,
      object text not null,
      survivor_id uuid not null,
      merged_ids uuid[] not null,
      field_choices jsonb not null,
      snapshot jsonb not null,
      created_at timestamptz not null,
      created_by text not null,
      undone_at timestamptz null,
      undone_by text null,
      undo_conflicts jsonb null,
      primary key (id)
    )`);
    this.addSql('create index record_merge_org_idx on record_merge (organization_id, id)');

    // rescan triggers: statement-level with transition tables, so a bulk insert costs one statement
    const chunked = (rows: string, object: string) =>
      `insert into duplicate_scan_queue (organization_id, object, record_ids)
         select organization_id, ${object}, array_agg(id) from (
           select organization_id, id, (row_number() over (partition by organization_id) - 1) / 500 as chunk from (${rows}) r
         ) c group by organization_id, chunk`;
    this.addSql(`create function duplicate_queue_inserted() returns trigger language plpgsql set search_path from current as $$
      begin
        ${chunked('select organization_id, id from new_rows where deleted_at is null', 'TG_ARGV[0]')};
        return null;
      end $$`);
    this.addSql(`create function duplicate_queue_contact_updated() returns trigger language plpgsql set search_path from current as $$
      begin
        ${chunked(
          `select n.organization_id, n.id from new_rows n join old_rows o on o.id = n.id
           where (n.email, n.phone, n.mobile, n.first_name, n.last_name, n.company_id, n.deleted_at)
             is distinct from (o.email, o.phone, o.mobile, o.first_name, o.last_name, o.company_id, o.deleted_at)`,
          `'contact'`,
        )};
        return null;
      end $$`);
    this.addSql(`create function duplicate_queue_company_updated() returns trigger language plpgsql set search_path from current as $$
      begin
        ${chunked(
          `select n.organization_id, n.id from new_rows n join old_rows o on o.id = n.id
           where (n.name, n.domain, n.website, n.email, n.phone, n.address_city, n.deleted_at)
             is distinct from (o.name, o.domain, o.website, o.email, o.phone, o.address_city, o.deleted_at)`,
          `'company'`,
        )};
        return null;
      end $$`);
    for (const table of ['company', 'contact']) {
      this.addSql(
        `create trigger ${table}_duplicate_inserted after insert on ${table} referencing new table as new_rows for each statement execute function duplicate_queue_inserted('${table}')`,
      );
      this.addSql(
        `create trigger ${table}_duplicate_updated after update on ${table} referencing old table as old_rows new table as new_rows for each statement execute function duplicate_queue_${table}_updated()`,
      );
      // what exists already is scanned once
      this.addSql(chunked(`select organization_id, id from ${table} ${live}`, `'${table}'`));
    }
  }

  override down(): void {
    for (const table of ['company', 'contact']) {
      this.addSql(`drop trigger ${table}_duplicate_updated on ${table}`);
      this.addSql(`drop trigger ${table}_duplicate_inserted on ${table}`);
    }
    this.addSql('drop function duplicate_queue_company_updated()');
    this.addSql('drop function duplicate_queue_contact_updated()');
    this.addSql('drop function duplicate_queue_inserted()');
    this.addSql('drop table record_merge');
    this.addSql('drop table duplicate_settings');
    this.addSql('drop table duplicate_scan_queue');
    this.addSql('drop table duplicate_pair');
    for (const index of [
      'contact_email_key_idx',
      'contact_phone_idx',
      'contact_mobile_idx',
      'contact_name_key_idx',
      'company_domain_key_idx',
      'company_email_key_idx',
      'company_phone_idx',
      'company_name_key_idx',
    ]) {
      this.addSql(`drop index ${index}`);
    }
    for (const fn of [
      'crm_company_name_key(text)',
      'crm_company_name_strip(text)',
      'crm_person_name_key(text, text)',
      'crm_company_domain_key(text, text)',
      'crm_domain_key(text)',
      'crm_email_key(text)',
    ]) {
      this.addSql(`drop function ${fn}`);
    }
    this.addSql('alter table contact drop column merged_into_id');
    this.addSql('alter table company drop column merged_into_id');
  }
}
