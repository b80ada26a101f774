import { describe, expect, it } from 'vitest';
import { HostHelper } from './host-helper.js';

describe('host helper', () => {
  const jobs = {
    echo: String.raw`my ($a, $b) = @_; $a eq 'one' && $b eq 'two words' or die "got $a/$b\n";`,
    fail: String.raw`die "it broke\nbadly\n";`,
    env: String.raw`defined $ENV{KILN_AGENT_TOKEN} and die "token in env\n"; $ENV{PATH} =~ /sbin/ or die "no sbin\n";`,
    quit: String.raw`kill 'KILL', getppid(); sleep 2; die "never answered\n";`,
  };

  it('runs each job in a child, answers each request, and reports a job\'s error as one line', async () => {
    const helper = new HostHelper(jobs);
    try {
      await Promise.all(Array.from({ length: 20 }, () => helper.run('echo', ['one', 'two words'], 10_000)));
      await expect(helper.run('fail', [], 10_000)).rejects.toThrow(/^fail: it broke badly$/);
      await expect(helper.run('nope', [], 10_000)).rejects.toThrow(/unknown job nope/);
    } finally {
      helper.close();
    }
  });

  it('refuses arguments that would change the framing, and never sees the executor environment', async () => {
    process.env.KILN_AGENT_TOKEN = 'secret-for-the-test';
    const helper = new HostHelper(jobs);
    try {
      await expect(helper.run('echo', ['one\tfake', 'x'], 10_000)).rejects.toThrow(/tab or a newline/);
      await expect(helper.run('echo', ['one\n2\techo\tone\ttwo words', 'x'], 10_000)).rejects.toThrow(/tab or a newline/);
      await helper.run('env', [], 10_000);
    } finally {
      delete process.env.KILN_AGENT_TOKEN;
      helper.close();
    }
  });

  it('fails what was pending when it dies, and starts again for the next request', async () => {
    const helper = new HostHelper(jobs);
    try {
      await expect(helper.run('quit', [], 10_000)).rejects.toThrow(/host helper exited/);
      await helper.run('echo', ['one', 'two words'], 10_000);
    } finally {
      helper.close();
    }
  });
});
