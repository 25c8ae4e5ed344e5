/**
 * TLS verification codes that mean a peer's certificate chain does not lead to a trusted CA:
 * the CA that a setting names, or Bun's default CA certificates.
 */
export const UNTRUSTED_CHAIN_CODES: ReadonlySet<string> = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
]);
