/**
 * A function's ARN: its tenant is the account id (`arn:aws:lambda:local:<tenant>:function:<name>`),
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

const REGION = 'local';

function unqualifiedArn(tenant: string, name: string): string {
  return `arn:aws:lambda:${REGION}:${tenant}:function:${name}`;
}
