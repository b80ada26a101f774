import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Debian's awscli (v2; scripts/setup.sh installs it for the tests) wherever it is installed, else
 * whatever `aws` is on PATH. v2 reads blob arguments such as --payload as base64 unless told they
 * are raw, v1 knows no such option: the flag is added only for v2.
 */
export async function awsCli(endpoint: string, env: Record<string, string>): Promise<(...args: string[]) => Promise<Record<string, unknown>>> {
  const bin = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
  const version = (await run(bin, ['--version'], { env })).stdout;
  const binaryFormat = /^aws-cli\/1\./.test(version) ? [] : ['--cli-binary-format', 'raw-in-base64-out'];
  return async (...args: string[]) =>
    JSON.parse((await run(bin, ['--endpoint-url', endpoint, '--output', 'json', ...binaryFormat, 'lambda', ...args], { env, timeout: 60_000 })).stdout || '{}') as Record<string, unknown>;
}
