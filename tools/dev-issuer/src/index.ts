/**
 * Keycloak-compatible development OpenID issuer for the CRM realm. It reads the realm export
 * (deploy/keycloak/realm-crm.json) and mints the same access tokens a Keycloak 26 would, so
 * services and tests can authenticate without a running Keycloak.
 */
export { startDevIssuer, PASSWORD_TOKEN_CLIENT_ID, type DevIssuer, type DevIssuerOptions } from './dev-issuer.ts';
export { OAuthError } from './token-grants.ts';
export {
  loadRealmFile,
  parseRealm,
  RealmFileError,
  type ClientScope,
  type Organization,
  type ProtocolMapper,
  type Realm,
  type RealmClient,
  type RealmRole,
  type RealmUser,
} from './realm-file.ts';
