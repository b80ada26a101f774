/** Where an egress sandbox finds Kiln's CA (bound read-only from the executor's etc dir, bwrap-args.ts). */
export const SANDBOX_CA_CERT = '/etc/kiln/egress-ca.pem';
/** The host's trusted CAs plus Kiln's: what SSL_CERT_FILE and friends name inside the sandbox. */
export const SANDBOX_CA_BUNDLE = '/etc/kiln/ca-bundle.pem';

/** The sandbox's copies of the certificate and the bundle in the executor's etc dir (spec.etcDir; intercept.ts writes them). */
export const CA_FILES = { cert: 'kiln-egress-ca.pem', bundle: 'kiln-ca-bundle.pem' } as const;

/**
 * The environment that makes the common clients trust Kiln's CA beside the public ones, given to
 * processes of a sandbox with an `https` secret: OpenSSL (curl, git, Python's ssl, wget) reads
 * SSL_CERT_FILE; Python requests and pip read REQUESTS_CA_BUNDLE; curl also CURL_CA_BUNDLE; Node
 * adds NODE_EXTRA_CA_CERTS to its own roots. The system store is not changed: /etc/ssl is the
 * host's, bound read-only into every sandbox.
 */
export function caEnv(): Record<string, string> {
  return { SSL_CERT_FILE: SANDBOX_CA_BUNDLE, REQUESTS_CA_BUNDLE: SANDBOX_CA_BUNDLE, CURL_CA_BUNDLE: SANDBOX_CA_BUNDLE, NODE_EXTRA_CA_CERTS: SANDBOX_CA_CERT };
}
