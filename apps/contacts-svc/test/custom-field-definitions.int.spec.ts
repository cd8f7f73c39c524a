import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { customFieldV1, validateCustomFields } from '@crm/contracts';
import { callUnary, insecure, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, startTestInfra, type TestInfra } from '@crm/testing';
import { randomBytes } from 'node:crypto';
import { configSchema, createContactsService } from '../src/app.ts';
import { activeDefinitions } from '../src/custom-field/definitions.ts';

let infra: TestInfra;
let contacts: ServiceHandle;
let client: customFieldV1.CustomFieldServiceClient;

beforeAll(async () => {
  infra = await startTestInfra();
  contacts = await createContactsService(configSchema.parse(serviceEnv(infra)));
  client = new customFieldV1.CustomFieldServiceClient(`127.0.0.1:${contacts.grpcPort}`, insecure());
});

afterAll(async () => {
  client?.close();
  await contacts?.close();
  await infra?.close();
});

const O = customFieldV1.CustomFieldObject;
const T = customFieldV1.CustomFieldType;
const key = (prefix: string) => `${prefix}_${randomBytes(4).toString('hex')}`;
const blank: customFieldV1.CustomField = { id: '', object: 0, key: '', label: '', type: 0, options: [], required: false, description: '' };

async function create(alias: string, field: Partial<customFieldV1.CustomField>): Promise<customFieldV1.CustomField> {
  const res = await asAdminOf(alias, () => callUnary(client, client.createCustomField, { customField: { ...blank, ...field } }));
  return res.customField!;
}

describe('activeDefinitions (real Postgres)', () => {
  it('loads every live definition of the object in the organization, inactive ones flagged, in one query', async () => {
    const tier = key('tier');
    const since = key('since');
    const gone = key('gone');
    await create('acme', {
      object: O.CUSTOM_FIELD_OBJECT_COMPANY,
      key: tier,
      label: 'Tier',
      type: T.CUSTOM_FIELD_TYPE_SELECT,
      options: ['gold', 'silver'],
      defaultValue: 'gold',
    });
    await create('acme', { object: O.CUSTOM_FIELD_OBJECT_COMPANY, key: since, label: 'Since', type: T.CUSTOM_FIELD_TYPE_DATE, active: false });
    const deleted = await create('acme', { object: O.CUSTOM_FIELD_OBJECT_COMPANY, key: gone, label: 'Gone', type: T.CUSTOM_FIELD_TYPE_TEXT });
    await asAdminOf('acme', () => callUnary(client, client.deleteCustomField, { id: deleted.id }));
    const contactKey = key('nick');
    await create('acme', { object: O.CUSTOM_FIELD_OBJECT_CONTACT, key: contactKey, label: 'Nickname', type: T.CUSTOM_FIELD_TYPE_TEXT });
    const globexKey = key('other');
    await create('globex', { object: O.CUSTOM_FIELD_OBJECT_COMPANY, key: globexKey, label: 'Other', type: T.CUSTOM_FIELD_TYPE_NUMBER });

    const queries: string[] = [];
    const em = contacts.orm.em.fork();
    const logger = em.config.getLogger();
    const original = logger.logQuery.bind(logger);
    logger.logQuery = (context) => {
      queries.push(String(context.query));
      original(context);
    };
    let defs;
    try {
      defs = await activeDefinitions(em, organizationId('acme'), 'company');
    } finally {
      logger.logQuery = original;
    }
    const keys = defs.map((d) => d.key);
    expect(keys).toEqual(expect.arrayContaining([tier, since]));
    expect(keys).not.toContain(gone);
    expect(keys).not.toContain(contactKey);
    expect(keys).not.toContain(globexKey);
    expect([...keys].sort()).toEqual(keys);
    expect(defs.find((d) => d.key === tier)).toEqual({
      object: 'company',
      key: tier,
      label: 'Tier',
      type: 'select',
      options: ['gold', 'silver'],
      required: false,
      defaultValue: 'gold',
      description: null,
      active: true,
    });
    expect(defs.find((d) => d.key === since)).toMatchObject({ type: 'date', active: false, options: [], defaultValue: null });
    expect(queries.filter((q) => /custom_field/.test(q))).toHaveLength(1);

    // what the company hooks will do with them: the default applies, the inactive key is refused
    expect(validateCustomFields(defs, {}, null)).toMatchObject({ values: { [tier]: 'gold' } });
    expect(validateCustomFields(defs, { [since]: '2024-01-01' }, null)).toMatchObject({ errors: [{ field: `customFields.${since}` }] });
  });

  it('keeps JSON defaults of every shape as they were sent (a text "123" stays a string)', async () => {
    const k = key('code');
    await create('acme', { object: O.CUSTOM_FIELD_OBJECT_CONTACT, key: k, label: 'Code', type: T.CUSTOM_FIELD_TYPE_TEXT, defaultValue: '123' });
    const m = key('colours');
    await create('acme', {
      object: O.CUSTOM_FIELD_OBJECT_CONTACT,
      key: m,
      label: 'Colours',
      type: T.CUSTOM_FIELD_TYPE_MULTISELECT,
      options: ['red', 'blue'],
      defaultValue: ['blue'],
    });
    const defs = await activeDefinitions(contacts.orm.em.fork(), organizationId('acme'), 'contact');
    expect(defs.find((d) => d.key === k)?.defaultValue).toBe('123');
    expect(defs.find((d) => d.key === m)?.defaultValue).toEqual(['blue']);
  });
});
