// keycloak-connect ships no types for its token parser (used only by keycloak.auth.ts)
declare module 'keycloak-connect/middleware/auth-utils/token.js' {
  const Token: new (raw: string, clientId: string) => unknown;
  export default Token;
}
