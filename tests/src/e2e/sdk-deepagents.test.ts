import { AIMessage, HumanMessage, ToolMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { createDeepAgent } from 'deepagents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kiln } from '@kiln-sandbox/sdk';
import { KilnSandbox } from '@kiln-sandbox/sdk/deepagents';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The deepagents integration driven through deepagents' own agent: `createDeepAgent` with the
 * Kiln sandbox as its backend and LangChain's scripted fake chat model in place of an LLM. The
 * agent's own tools (write_file, execute, read_file, edit_file, ls, grep) run in a Kiln session.
 */
let k: TestKiln;
let sandbox: KilnSandbox;

beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
  sandbox = await KilnSandbox.create(new Kiln({ url: k.url }), { template: 'nodejs' });
}, 120_000);

afterAll(async () => {
  await sandbox?.close().catch((err: unknown) => console.error('session cleanup failed', err));
  await k?.stop();
});

function toolOutputs(messages: unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of messages) if (m instanceof ToolMessage) out[m.name ?? ''] = typeof m.content === 'string' ? m.content : JSON.stringify(m.content);
  return out;
}

describe('deepagents sandbox backend', () => {
  it('runs the agent\'s file and shell tools in a Kiln session', { timeout: 120_000 }, async () => {
    const model = fakeModel()
      .respondWithTools([{ name: 'write_file', args: { file_path: '/workspace/calc.js', content: 'console.log("answer", 6 * 7);\n' }, id: 'c1' }])
      .respondWithTools([{ name: 'execute', args: { command: 'cd /workspace && node calc.js && id -u' }, id: 'c2' }])
      .respondWithTools([{ name: 'edit_file', args: { file_path: '/workspace/calc.js', old_string: '6 * 7', new_string: '6 * 9' }, id: 'c3' }])
      .respondWithTools([{ name: 'read_file', args: { file_path: '/workspace/calc.js' }, id: 'c4' }])
      .respondWithTools([{ name: 'ls', args: { path: '/workspace' }, id: 'c5' }])
      .respondWithTools([{ name: 'grep', args: { pattern: '6 * 9', path: '/workspace' }, id: 'c6' }])
      .respond(new AIMessage('done'));
    const agent = createDeepAgent({ model, backend: sandbox });
    const result = await agent.invoke({ messages: [new HumanMessage('compute the answer')] });
    const out = toolOutputs(result.messages);

    expect(out.execute).toContain('answer 42');
    // A sandbox uid, not the host's root: the command really ran in Kiln's sandbox.
    expect(out.execute).not.toMatch(/^0$/m);
    expect(out.read_file).toContain('6 * 9');
    expect(out.ls).toContain('/workspace/calc.js');
    expect(out.grep).toContain('calc.js');
    // The edit is in the session's file, seen through the SDK.
    expect(await sandbox.session.files.read('calc.js')).toBe('console.log("answer", 6 * 9);\n');
    expect(result.messages.at(-1)?.content).toBe('done');
  });

  it('reports a missing file to the agent as deepagents\' error, and a failing command\'s exit code', async () => {
    expect(await sandbox.downloadFiles(['/workspace/missing.txt'])).toEqual([{ path: '/workspace/missing.txt', content: null, error: 'file_not_found' }]);
    expect((await sandbox.uploadFiles([['/etc/not-here', new Uint8Array([1])]]))[0]?.error).toBe('invalid_path');
    const r = await sandbox.execute('echo to-stderr >&2; exit 7');
    expect([r.exitCode, r.output.trim()]).toEqual([7, 'to-stderr']);
  });
});
