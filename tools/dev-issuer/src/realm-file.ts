import { readFile } from 'node:fs/promises';

/**
 * The parts of a Keycloak realm export (`RealmRepresentation` JSON, as written by `kc.sh export`
 * and read by `kc.sh import`) that the dev issuer needs to mint Keycloak-shaped tokens.
 * Defaults mirror what Keycloak's importer assumes when a field is absent.
 */
export interface Realm {
  /** Realm name (`realm`), the last path segment of the issuer URL. */
  name: string;
  enabled: boolean;
  /** `accessTokenLifespan` in seconds, when the export sets it. */
  accessTokenLifespan: number | undefined;
  /** `loginWithEmailAllowed` (Keycloak default true): the password grant also matches e-mail addresses. */
  loginWithEmailAllowed: boolean;
  /** `organizationsEnabled`: without it Keycloak's organization mappers emit nothing. */
  organizationsEnabled: boolean;
  /** Name of the realm's default role (`defaultRole.name`, else `default-roles-<realm>`). */
  defaultRoleName: string;
  /** Realm roles by name. */
  roles: ReadonlyMap<string, RealmRole>;
  users: readonly RealmUser[];
  clients: readonly RealmClient[];
  /** Client scopes by name. */
  clientScopes: ReadonlyMap<string, ClientScope>;
  organizations: readonly Organization[];
}

/** A realm role; `composites` are the realm roles it implies (client-role composites are not modelled). */
export interface RealmRole {
  name: string;
  description: string | undefined;
  composites: readonly string[];
}

/** A user of the realm export. Service-account users carry `serviceAccountClientId`. */
export interface RealmUser {
  id: string;
  /** Keycloak stores usernames lower-cased; kept as written here, compared case-insensitively. */
  username: string;
  email: string | undefined;
  firstName: string | undefined;
  lastName: string | undefined;
  emailVerified: boolean;
  enabled: boolean;
  /** Plain-text `password` credentials (`value`); hashed credentials cannot be checked by the dev issuer. */
  passwords: readonly PasswordCredential[];
  requiredActions: readonly string[];
  /** Directly assigned realm roles (composites not expanded). */
  realmRoles: readonly string[];
  /** Free-form user attributes (`attributes`), each multi-valued as in Keycloak. */
  attributes: Readonly<Record<string, readonly string[]>>;
  serviceAccountClientId: string | undefined;
}

/** A plain-text password credential; `temporary` ones force an update before any login succeeds. */
export interface PasswordCredential {
  value: string;
  temporary: boolean;
}

/** An OpenID Connect client of the realm export. */
export interface RealmClient {
  clientId: string;
  enabled: boolean;
  publicClient: boolean;
  /** Client secret of a confidential client (`secret`). */
  secret: string | undefined;
  directAccessGrantsEnabled: boolean;
  serviceAccountsEnabled: boolean;
  protocolMappers: readonly ProtocolMapper[];
  defaultClientScopes: readonly string[];
  optionalClientScopes: readonly string[];
}

/** A client scope and the protocol mappers it contributes when a client gets it. */
export interface ClientScope {
  name: string;
  protocol: string;
  /** Scope attributes such as `include.in.token.scope` (Keycloak stores them as strings). */
  attributes: Readonly<Record<string, string>>;
  protocolMappers: readonly ProtocolMapper[];
}

/** A protocol mapper (`protocolMapper` is the provider id, e.g. `oidc-audience-mapper`). */
export interface ProtocolMapper {
  name: string;
  protocolMapper: string;
  config: Readonly<Record<string, string>>;
}

/** A Keycloak 26 organization with its members (by username, as Keycloak's importer resolves them). */
export interface Organization {
  id: string;
  name: string;
  /** Key of the organization in the `organization` token claim. */
  alias: string;
  enabled: boolean;
  domains: readonly string[];
  attributes: Readonly<Record<string, readonly string[]>>;
  /** Usernames of the members, lower-cased. */
  members: readonly string[];
}

/** Raised when the realm file is not a realm export the dev issuer can use; `path` locates the field. */
export class RealmFileError extends Error {
  readonly path: string;

  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'RealmFileError';
    this.path = path;
  }
}

/**
 * Reads and parses a realm export file.
 * @param file path of the JSON file.
 * @throws RealmFileError when a field the issuer relies on is missing or mistyped; the file-system
 *   and JSON syntax errors of `readFile` / `JSON.parse` propagate unchanged.
 */
export async function loadRealmFile(file: string): Promise<Realm> {
  const json: unknown = JSON.parse(await readFile(file, 'utf8'));
  return parseRealm(json);
}

/**
 * Narrows a parsed realm export to the {@link Realm} model.
 * @throws RealmFileError when a required field is missing or has the wrong type.
 */
export function parseRealm(json: unknown): Realm {
  const root = record(json, '$');
  const name = requiredString(root, 'realm', '$');
  const roles = new Map<string, RealmRole>();
  const rolesRecord = optionalRecord(root, 'roles', '$');
  for (const [index, item] of optionalArray(rolesRecord, 'realm', '$.roles').entries()) {
    const role = parseRole(item, `$.roles.realm[${index}]`);
    roles.set(role.name, role);
  }
  const defaultRole = optionalRecord(root, 'defaultRole', '$');
  const scopes = new Map<string, ClientScope>();
  for (const [index, item] of optionalArray(root, 'clientScopes', '$').entries()) {
    const scope = parseClientScope(item, `$.clientScopes[${index}]`);
    scopes.set(scope.name, scope);
  }
  return {
    name,
    enabled: optionalBoolean(root, 'enabled', '$') ?? true,
    accessTokenLifespan: optionalNumber(root, 'accessTokenLifespan', '$'),
    loginWithEmailAllowed: optionalBoolean(root, 'loginWithEmailAllowed', '$') ?? true,
    organizationsEnabled: optionalBoolean(root, 'organizationsEnabled', '$') ?? false,
    defaultRoleName: optionalString(defaultRole, 'name', '$.defaultRole') ?? `default-roles-${name.toLowerCase()}`,
    roles,
    users: optionalArray(root, 'users', '$').map((item, index) => parseUser(item, `$.users[${index}]`)),
    clients: optionalArray(root, 'clients', '$').map((item, index) => parseClient(item, `$.clients[${index}]`)),
    clientScopes: scopes,
    organizations: optionalArray(root, 'organizations', '$').map((item, index) => parseOrganization(item, `$.organizations[${index}]`)),
  };
}

function parseRole(json: unknown, path: string): RealmRole {
  const role = record(json, path);
  const composites = optionalRecord(role, 'composites', path);
  return {
    name: requiredString(role, 'name', path),
    description: optionalString(role, 'description', path),
    composites: stringArray(composites, 'realm', `${path}.composites`),
  };
}

function parseUser(json: unknown, path: string): RealmUser {
  const user = record(json, path);
  const passwords: PasswordCredential[] = [];
  for (const [index, item] of optionalArray(user, 'credentials', path).entries()) {
    const credentialPath = `${path}.credentials[${index}]`;
    const credential = record(item, credentialPath);
    const value = optionalString(credential, 'value', credentialPath);
    if ((optionalString(credential, 'type', credentialPath) ?? 'password') === 'password' && value !== undefined) {
      passwords.push({ value, temporary: optionalBoolean(credential, 'temporary', credentialPath) ?? false });
    }
  }
  return {
    id: requiredString(user, 'id', path),
    username: requiredString(user, 'username', path),
    email: optionalString(user, 'email', path),
    firstName: optionalString(user, 'firstName', path),
    lastName: optionalString(user, 'lastName', path),
    emailVerified: optionalBoolean(user, 'emailVerified', path) ?? false,
    // Keycloak's importer leaves a user disabled unless the export says `enabled: true`.
    enabled: optionalBoolean(user, 'enabled', path) ?? false,
    passwords,
    requiredActions: stringArray(user, 'requiredActions', path),
    realmRoles: stringArray(user, 'realmRoles', path),
    attributes: multiValuedAttributes(user, `${path}`),
    serviceAccountClientId: optionalString(user, 'serviceAccountClientId', path),
  };
}

function parseClient(json: unknown, path: string): RealmClient {
  const client = record(json, path);
  return {
    clientId: requiredString(client, 'clientId', path),
    enabled: optionalBoolean(client, 'enabled', path) ?? true,
    publicClient: optionalBoolean(client, 'publicClient', path) ?? false,
    secret: optionalString(client, 'secret', path),
    directAccessGrantsEnabled: optionalBoolean(client, 'directAccessGrantsEnabled', path) ?? false,
    serviceAccountsEnabled: optionalBoolean(client, 'serviceAccountsEnabled', path) ?? false,
    protocolMappers: optionalArray(client, 'protocolMappers', path).map((item, index) => parseMapper(item, `${path}.protocolMappers[${index}]`)),
    defaultClientScopes: stringArray(client, 'defaultClientScopes', path),
    optionalClientScopes: stringArray(client, 'optionalClientScopes', path),
  };
}

function parseClientScope(json: unknown, path: string): ClientScope {
  const scope = record(json, path);
  return {
    name: requiredString(scope, 'name', path),
    protocol: optionalString(scope, 'protocol', path) ?? 'openid-connect',
    attributes: stringRecord(scope, 'attributes', path),
    protocolMappers: optionalArray(scope, 'protocolMappers', path).map((item, index) => parseMapper(item, `${path}.protocolMappers[${index}]`)),
  };
}

function parseMapper(json: unknown, path: string): ProtocolMapper {
  const mapper = record(json, path);
  return {
    name: optionalString(mapper, 'name', path) ?? '',
    protocolMapper: requiredString(mapper, 'protocolMapper', path),
    config: stringRecord(mapper, 'config', path),
  };
}

function parseOrganization(json: unknown, path: string): Organization {
  const organization = record(json, path);
  const name = requiredString(organization, 'name', path);
  return {
    id: requiredString(organization, 'id', path),
    name,
    alias: optionalString(organization, 'alias', path) ?? name,
    enabled: optionalBoolean(organization, 'enabled', path) ?? true,
    domains: optionalArray(organization, 'domains', path).map((item, index) =>
      requiredString(record(item, `${path}.domains[${index}]`), 'name', `${path}.domains[${index}]`),
    ),
    attributes: multiValuedAttributes(organization, path),
    members: optionalArray(organization, 'members', path).map((item, index) =>
      requiredString(record(item, `${path}.members[${index}]`), 'username', `${path}.members[${index}]`).toLowerCase(),
    ),
  };
}

type JsonRecord = Readonly<Record<string, unknown>>;

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function record(value: unknown, path: string): JsonRecord {
  if (!isRecord(value)) throw new RealmFileError(path, 'expected an object');
  return value;
}

function optionalRecord(parent: JsonRecord, key: string, path: string): JsonRecord {
  const value = parent[key];
  if (value === undefined || value === null) return {};
  return record(value, `${path}.${key}`);
}

function optionalArray(parent: JsonRecord, key: string, path: string): readonly unknown[] {
  const value = parent[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RealmFileError(`${path}.${key}`, 'expected an array');
  return value;
}

function requiredString(parent: JsonRecord, key: string, path: string): string {
  const value = optionalString(parent, key, path);
  if (value === undefined || value === '') throw new RealmFileError(`${path}.${key}`, 'expected a non-empty string');
  return value;
}

function optionalString(parent: JsonRecord, key: string, path: string): string | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new RealmFileError(`${path}.${key}`, 'expected a string');
  return value;
}

function optionalBoolean(parent: JsonRecord, key: string, path: string): boolean | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new RealmFileError(`${path}.${key}`, 'expected a boolean');
  return value;
}

function optionalNumber(parent: JsonRecord, key: string, path: string): number | undefined {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new RealmFileError(`${path}.${key}`, 'expected a number');
  return value;
}

function stringArray(parent: JsonRecord, key: string, path: string): string[] {
  return optionalArray(parent, key, path).map((item, index) => {
    if (typeof item !== 'string') throw new RealmFileError(`${path}.${key}[${index}]`, 'expected a string');
    return item;
  });
}

function stringRecord(parent: JsonRecord, key: string, path: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(optionalRecord(parent, key, path))) {
    if (typeof value !== 'string') throw new RealmFileError(`${path}.${key}.${name}`, 'expected a string');
    result[name] = value;
  }
  return result;
}

function multiValuedAttributes(parent: JsonRecord, path: string): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  const attributes = optionalRecord(parent, 'attributes', path);
  for (const name of Object.keys(attributes)) {
    result[name] = stringArray(attributes, name, `${path}.attributes`);
  }
  return result;
}
