/**
 * A function's ARN: its tenant is the account id (`arn:aws:lambda:<region>:<tenant>:function:<name>`),
 * with the version when it is not $LATEST.
 */
export function functionArn(tenant: string, name: string, version?: string): string {
  return `${unqualifiedArn(tenant, name)}${version && version !== '$LATEST' ? `:${version}` : ''}`;
}

/**
 * The ARN a caller invoked, as the handler's `context.invokedFunctionArn` shows it: qualified
 * exactly as the caller qualified it (a version, an alias, or $LATEST named explicitly).
 */
export function invokedFunctionArn(tenant: string, name: string, qualifier: string | undefined): string {
  return `${unqualifiedArn(tenant, name)}${qualifier ? `:${qualifier}` : ''}`;
}

/**
 * The deployment's region (KILN_REGION, default `us-east-1`, as the AWS SDK and CLI assume): set once at start-up (server.ts) and the
 * same for every function, like an AWS account's region. Module state because ARNs are built in
 * many places that have no config at hand; the value never changes after start.
 */
let region = 'us-east-1';

export function setRegion(value: string): void {
  region = value;
}

/** The region in ARNs, and what handlers see as AWS_REGION (sent to executors with each function). */
export function currentRegion(): string {
  return region;
}

function unqualifiedArn(tenant: string, name: string): string {
  return `arn:aws:lambda:${region}:${tenant}:function:${name}`;
}
