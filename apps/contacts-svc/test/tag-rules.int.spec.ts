import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { tagRuleV1, tagV1 } from '@crm/contracts';
import { callUnary, DomainError, insecure, runWithContext, runWithSigner, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, testSigner, type TestInfra } from '@crm/testing';
import { configSchema, createContactsService } from '../src/app.ts';
import { tagsToAssign } from '../src/tag/tag-rules.apply.ts';

/**
 * Tag rules against the real contacts-svc and Postgres: what `tagsToAssign` returns, the tag's
 * case-insensitive unique index, and write roles enforced by the service itself (not only the gateway).
 */
let infra: TestInfra;
let contacts: ServiceHandle;
let tags: tagV1.TagServiceClient;
let rules: tagRuleV1.TagRuleServiceClient;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  tags = new tagV1.TagServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
  rules = new tagRuleV1.TagRuleServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
});

afterAll(async () => {
  tags?.close();
  rules?.close();
  await contacts?.close();
  await infra?.close();
});

let n = 0;
async function tag(alias: string, name: string, active?: boolean): Promise<string> {
  const res = await asAdminOf(alias, () => callUnary(tags, tags.createTag, { tag: { id: '', name: `${name} ${++n}`, color: '', description: '', active } }));
  return res.tag!.id;
}

async function rule(
  alias: string,
  object: tagRuleV1.TagRuleObject,
  field: tagRuleV1.TagRuleField,
  value: string,
  tagId: string,
  active?: boolean,
): Promise<string> {
  const res = await asAdminOf(alias, () => callUnary(rules, rules.createTagRule, { tagRule: { id: '', object, field, value, tagId, active } }));
  return res.tagRule!.id;
}

const { TAG_RULE_OBJECT_COMPANY: COMPANY, TAG_RULE_OBJECT_CONTACT: CONTACT } = tagRuleV1.TagRuleObject;
const F = tagRuleV1.TagRuleField;
const acme = organizationId('acme');
const assign = (organization: string, object: 'company' | 'contact', values: Record<string, unknown>, changed: string[], isCreate: boolean) =>
  tagsToAssign(contacts.orm.em.fork(), organization, object, values, new Set(changed), isCreate);

describe('tagsToAssign', () => {
  // one organization's rules, made once; each test reads them with other values
  let customer: string, retail: string, referral: string, decisionMaker: string, inactiveRule: string, inactiveTag: string, deletedTag: string, globex: string;
  beforeAll(async () => {
    customer = await tag('acme', 'Customer');
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_ACCOUNT_TYPE, 'Customer', customer);
    retail = await tag('acme', 'Retail');
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_INDUSTRY, 'RETAIL', retail);
    // a second rule for the same tag: the tag comes back once
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_STATUS, 'active', retail);
    referral = await tag('acme', 'Referred');
    await rule('acme', CONTACT, F.TAG_RULE_FIELD_SOURCE, 'referral', referral);
    decisionMaker = await tag('acme', 'Decision maker');
    await rule('acme', CONTACT, F.TAG_RULE_FIELD_IS_DECISION_MAKER, 'TRUE', decisionMaker);
    inactiveRule = await tag('acme', 'Inactive rule');
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_ACCOUNT_TYPE, 'customer', inactiveRule, false);
    inactiveTag = await tag('acme', 'Inactive tag', false);
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_ACCOUNT_TYPE, 'customer', inactiveTag);
    deletedTag = await tag('acme', 'Deleted');
    await rule('acme', COMPANY, F.TAG_RULE_FIELD_ACCOUNT_TYPE, 'customer', deletedTag);
    // the API refuses to delete a tag rules assign (TAG_HAS_RULES); a rule left pointing at a
    // deleted tag (written in the same instant as the delete) must still assign nothing
    await contacts.orm.em.fork().execute('update contacts.tag set deleted_at = now() where id = ?', [deletedTag]);
    globex = await tag('globex', 'Customer');
    await rule('globex', COMPANY, F.TAG_RULE_FIELD_ACCOUNT_TYPE, 'customer', globex);
  });

  it('on create: the live, active tags of every active rule whose field holds its value (case-insensitive), once each', async () => {
    const values = { name: 'Acme', accountType: 'customer', industry: 'Retail', status: 'active', source: 'referral', priority: null };
    expect(await assign(acme, 'company', values, [], true)).toEqual([customer, retail].sort());
  });

  it('on update: only rules whose field changed', async () => {
    const values = { accountType: 'customer', industry: 'retail', status: null };
    expect(await assign(acme, 'company', values, ['industry', 'name'], false)).toEqual([retail]);
    expect(await assign(acme, 'company', values, ['name', 'priority'], false)).toEqual([]);
    expect(await assign(acme, 'company', values, ['accountType'], false)).toEqual([customer]);
  });

  it('matches only the object the rule watches, and booleans as true/false', async () => {
    expect(await assign(acme, 'contact', { source: 'Referral', isDecisionMaker: true, accountType: 'customer' }, [], true)).toEqual(
      [referral, decisionMaker].sort(),
    );
    expect(await assign(acme, 'contact', { isDecisionMaker: false }, ['isDecisionMaker'], false)).toEqual([]);
    expect(await assign(acme, 'company', { source: 'referral' }, [], true)).toEqual([]);
  });

  it("is scoped by organization: another organization's rules never assign", async () => {
    expect(await assign(organizationId('globex'), 'company', { accountType: 'customer' }, [], true)).toEqual([globex]);
    const mine = await assign(acme, 'company', { accountType: 'customer' }, [], true);
    expect(mine).toEqual([customer]);
    expect(mine).not.toContain(inactiveRule);
    expect(mine).not.toContain(inactiveTag);
    expect(mine).not.toContain(deletedTag);
  });

  it('answers nothing when no watched field has a value', async () => {
    expect(await assign(acme, 'company', { accountType: null, industry: '', rating: undefined }, [], true)).toEqual([]);
  });
});

describe('tags in the database', () => {
  it('keep names unique by lower(name) among live tags (the expression index the schema test compares by name only)', async () => {
    const [index] = await contacts.orm.em
      .fork()
      .execute<{ indexdef: string }[]>(`select indexdef from pg_indexes where schemaname = 'contacts' and indexname = 'tag_name_uq'`);
    expect(index?.indexdef).toMatch(
      /^CREATE UNIQUE INDEX tag_name_uq ON contacts\.tag USING btree \(organization_id, lower\(name\)\) WHERE \(\(deleted_at IS NULL\) AND \(name IS NOT NULL\)\)$/,
    );
    const create = (name: string) => asAdminOf('acme', () => callUnary(tags, tags.createTag, { tag: { id: '', name, color: '', description: '' } }));
    await create('Wholesale');
    const error = await create('wHOLESALE').catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'conflict', code: 'TAG_NAME_TAKEN' });
  });
});

describe('write roles, enforced by contacts-svc itself', () => {
  const asManager = <T>(fn: () => Promise<T>): Promise<T> =>
    runWithSigner(testSigner, () => runWithContext({ organizationId: acme, userId: 'manager-1', roles: ['crm-manager'], requestId: 'manager-request' }, fn));

  it('refuses tag and tag-rule writes of a non-admin with PERMISSION_DENIED, and lets them read', async () => {
    const tagId = await tag('acme', 'Admin only');
    const denied = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (e: unknown) => e,
      );
    const ruleError = await denied(
      asManager(() => callUnary(rules, rules.createTagRule, { tagRule: { id: '', object: COMPANY, field: F.TAG_RULE_FIELD_RATING, value: 'hot', tagId } })),
    );
    expect(ruleError).toBeInstanceOf(DomainError);
    expect(ruleError).toMatchObject({ kind: 'permission_denied', code: 'NOT_ALLOWED' });
    expect(
      await denied(
        asManager(() => callUnary(tags, tags.updateTag, { tag: { id: tagId, name: '', color: '', description: 'x' }, updateMask: ['description'] })),
      ),
    ).toMatchObject({
      kind: 'permission_denied',
    });
    expect((await asManager(() => callUnary(tags, tags.getTag, { id: tagId }))).tag).toMatchObject({ id: tagId, active: true });
  });
});
