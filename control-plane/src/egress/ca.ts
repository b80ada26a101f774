import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The deployment's egress CA: PEM files the executors read (their proxies issue leaves with it). */
export interface EgressCaFiles {
  cert: string;
  key: string;
  /** Extra CAs the proxies trust for upstream hosts (KILN_EGRESS_UPSTREAM_CA). */
  upstreamCa?: string | undefined;
}

/**
 * Makes the CA when its files do not exist yet (the default place is the data dir, which one
 * host's control plane owns): EC P-256, ten years, the key 0600 in a 0700 directory, written
 * under temporary names and renamed so that a crash leaves no half CA. Operators with several
 * hosts set KILN_EGRESS_CA_CERT and KILN_EGRESS_CA_KEY to one CA instead.
 */
export async function ensureEgressCa(files: EgressCaFiles): Promise<void> {
  if (existsSync(files.cert) && existsSync(files.key)) return;
  await mkdir(dirname(files.key), { recursive: true, mode: 0o700 });
  await mkdir(dirname(files.cert), { recursive: true, mode: 0o700 });
  const tmp = `.tmp-${process.pid}`;
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', files.key + tmp], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  await run('openssl', ['req', '-x509', '-new', '-key', files.key + tmp, '-subj', '/CN=Kiln egress CA', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', files.cert + tmp]);
  await rename(files.key + tmp, files.key);
  await rename(files.cert + tmp, files.cert);
}
