import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CreateFunctionCommand, InvokeCommand, LambdaClient, type Runtime } from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

const TUTORIAL = fileURLToPath(new URL('../../../executor/runtime/test/fixtures/provided-tutorial/', import.meta.url));

let k: TestKiln;
let lambda: LambdaClient;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: { pool: { minIdle: 0 } }, provided: { pool: { minIdle: 0 } }, shell: null } });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  lambda?.destroy();
  await k?.stop();
});

const invoke = (name: string, event: unknown) => lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(event)) }));

describe('the AWS SDK with python and custom (provided) runtimes', () => {
  it('deploys and invokes a python3.11 handler from a zip', async () => {
    const zip = makeZip([{ path: 'app.py', content: 'count = 0\ndef handler(event, context):\n    global count\n    count += 1\n    return {"hello": event["name"], "count": count, "version": context.function_version}\n' }]);
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'sdk-py', Runtime: 'python3.11', Role: 'r', Handler: 'app.handler', Code: { ZipFile: zip } }));
    const first = await invoke('sdk-py', { name: 'kiln' });
    expect(first.FunctionError).toBeUndefined();
    expect(JSON.parse(Buffer.from(first.Payload ?? []).toString())).toEqual({ hello: 'kiln', count: 1, version: '$LATEST' });
    expect(JSON.parse(Buffer.from((await invoke('sdk-py', { name: 'again' })).Payload ?? []).toString()).count).toBe(2);
    const err = await invoke('sdk-py', {});
    expect(err.FunctionError).toBe('Unhandled');
    // Python's runtime shape and key order, as AWS answers: errorMessage, errorType, requestId, stackTrace.
    const shape = JSON.parse(Buffer.from(err.Payload ?? []).toString());
    expect(Object.keys(shape)).toEqual(['errorMessage', 'errorType', 'requestId', 'stackTrace']);
    expect(shape).toMatchObject({ errorMessage: "'name'", errorType: 'KeyError', requestId: err.$metadata.requestId });
    expect(shape.stackTrace.join('')).toContain('app.py');
  });

  it('deploys a bash custom runtime (executable bootstrap) and returns non-JSON bytes untouched', async () => {
    const zip = makeZip([
      { path: 'bootstrap', content: readFileSync(`${TUTORIAL}bootstrap`), mode: 0o755 },
      { path: 'function.sh', content: readFileSync(`${TUTORIAL}function.sh`) },
    ]);
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'sdk-bash', Runtime: 'provided.al2023', Role: 'r', Handler: 'function.handler', Code: { ZipFile: zip } }));
    const res = await invoke('sdk-bash', { a: 1 });
    expect(res.FunctionError).toBeUndefined();
    expect(JSON.parse(Buffer.from(res.Payload ?? []).toString())).toMatchObject({ count: 1, event: { a: 1 } });

    await lambda.send(new CreateFunctionCommand({ FunctionName: 'sdk-bash-text', Runtime: 'provided', Role: 'r', Handler: 'function.text', Code: { ZipFile: zip } }));
    const text = await invoke('sdk-bash-text', {});
    expect(Buffer.from(text.Payload ?? [])).toEqual(Buffer.from('plain text, \xff\xfe not json\n\tline two', 'latin1'));
  });

  it("runs AWS's custom-runtime tutorial exactly as published (#!/bin/sh with set -o pipefail and source: /bin/sh is bash)", async () => {
    // From the Lambda developer guide, "Building a custom runtime" tutorial, unchanged.
    const bootstrap = `#!/bin/sh

set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the handler function from the script
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
`;
    const functionSh = `function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
`;
    const zip = makeZip([
      { path: 'bootstrap', content: bootstrap, mode: 0o755 },
      { path: 'function.sh', content: functionSh },
    ]);
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'aws-tutorial', Runtime: 'provided.al2023', Role: 'r', Handler: 'function.handler', Code: { ZipFile: zip } }));
    const res = await invoke('aws-tutorial', { key1: 'value1' });
    expect(res.FunctionError, Buffer.from(res.Payload ?? []).toString()).toBeUndefined();
    expect(Buffer.from(res.Payload ?? []).toString()).toBe(`Echoing request: '{"key1":"value1"}'`);
  });

  it('returns results byte for byte: a Python int beyond 2**53, a custom runtime\'s number and spacing (issue 19 defect 3)', async () => {
    const py = makeZip([{ path: 'app.py', content: 'def handler(event, context):\n    return {"big": 2**64 + 1, "price": 1.50}\n' }]);
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'exact-py', Runtime: 'python3.11', Role: 'r', Handler: 'app.handler', Code: { ZipFile: py } }));
    // Python writes 1.5 for 1.50, as it does on AWS; the integer stays exact, past what a double holds.
    expect(Buffer.from((await invoke('exact-py', {})).Payload ?? []).toString()).toBe('{"big":18446744073709551617,"price":1.5}');
    const bootstrap = `#!/bin/sh
set -eu
while true; do
  HEADERS="$(mktemp)"
  curl -sS -o /dev/null -D "$HEADERS" "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$ID/response" --data-binary '{"a": 1.50 , "n": 18446744073709551617}'
done
`;
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'exact-sh', Runtime: 'provided.al2023', Role: 'r', Handler: 'x.handler', Code: { ZipFile: makeZip([{ path: 'bootstrap', content: bootstrap, mode: 0o755 }]) } }));
    const sh = await invoke('exact-sh', {});
    expect(sh.FunctionError, Buffer.from(sh.Payload ?? []).toString()).toBeUndefined();
    expect(Buffer.from(sh.Payload ?? []).toString()).toBe('{"a": 1.50 , "n": 18446744073709551617}');
    // The REST record embeds the same text as its `result`, and stores it so for GET.
    const rest = await fetch(`${k.url}/api/v1/functions/exact-sh/invocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const text = await rest.text();
    expect(rest.headers.get('content-type')).toMatch(/^application\/json/);
    expect(text).toContain('"result":{"a": 1.50 , "n": 18446744073709551617}');
    const id = (JSON.parse(text) as { id: string }).id;
    expect(await (await fetch(`${k.url}/api/v1/executions/${id}`)).text()).toContain('"result":{"a": 1.50 , "n": 18446744073709551617}');
  });

  it('returns the error document a custom runtime posts, unchanged, as Lambda does (issue 19 defect 5)', async () => {
    const doc = '{"errorMessage": "card declined", "errorType": "PaymentError", "stackTrace": ["charge (pay.sh:3)"], "retryable": false, "code": 402}';
    const bootstrap = `#!/bin/sh
set -eu
while true; do
  HEADERS="$(mktemp)"
  curl -sS -o /dev/null -D "$HEADERS" "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next"
  ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  curl -sS -o /dev/null -H 'Lambda-Runtime-Function-Error-Type: PaymentError' "http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$ID/error" --data-binary '${doc}'
done
`;
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'posted-error', Runtime: 'provided.al2023', Role: 'r', Handler: 'x.handler', Code: { ZipFile: makeZip([{ path: 'bootstrap', content: bootstrap, mode: 0o755 }]) } }));
    const out = await invoke('posted-error', {});
    expect(out.FunctionError).toBe('Unhandled');
    expect(Buffer.from(out.Payload ?? []).toString()).toBe(doc);
    // REST keeps Kiln's error shape, with the document beside it.
    const rest = (await k.call('POST', '/api/v1/functions/posted-error/invocations', {})).body;
    expect(rest).toMatchObject({ status: 'failed', error: { errorType: 'PaymentError', errorMessage: 'card declined' }, errorBody: doc });
  });

  it.each([
    ['nodejs20.x', 'index.js', `exports.handler = async (e) => (e.big ? 'x'.repeat(7 * 1024 * 1024) : 'small');`],
    ['python3.11', 'index.py', `def handler(e, c):\n    return 'x' * (7 * 1024 * 1024) if e.get('big') else 'small'\n`],
  ])('%s: a response over 6 MB fails with Function.ResponseSizeTooLarge, and the instance keeps serving', async (runtime, file, source) => {
    const name = `too-large-${runtime.replace(/\W/g, '')}`;
    await lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: runtime as Runtime, Role: 'r', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: file, content: source }]) } }));
    const big = await invoke(name, { big: true });
    expect(big.FunctionError).toBe('Unhandled');
    expect(JSON.parse(Buffer.from(big.Payload ?? []).toString())).toMatchObject({
      errorType: 'Function.ResponseSizeTooLarge',
      errorMessage: expect.stringMatching(/^Response payload size \(\d+ bytes\) exceeded maximum allowed payload size \(6291556 bytes\)\.$/),
    });
    const small = await invoke(name, {});
    expect(small.FunctionError).toBeUndefined();
    expect(Buffer.from(small.Payload ?? []).toString()).toBe('"small"');
  });

  it.each([
    ['nodejs20.x', 'index.js', `exports.handler = async () => process.env._X_AMZN_TRACE_ID ?? null;`],
    ['python3.11', 'index.py', `import os\ndef handler(e, c):\n    return os.environ.get('_X_AMZN_TRACE_ID')\n`],
  ])('%s: every invocation has its own _X_AMZN_TRACE_ID, as on Lambda (issue 19 defect 6)', async (runtime, file, source) => {
    const name = `trace-${runtime.replace(/\W/g, '')}`;
    await lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: runtime as Runtime, Role: 'r', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: file, content: source }]) } }));
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const id = JSON.parse(Buffer.from((await invoke(name, {})).Payload ?? []).toString()) as string;
      expect(id).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/);
      ids.add(id);
    }
    expect(ids.size).toBe(3);
  });
});
