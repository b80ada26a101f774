import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('keeps what inline jobs hold for as long as the helper lives, and its children do not keep it after a release', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-helper-'));
    const file = join(dir, 'users');
    const helper = new HostHelper(
      {
        // Succeeds only when nobody holds a shared lock of the file.
        free: String.raw`my ($f) = @_; sysopen(my $fh, $f, O_RDONLY) or die "open: $!\n"; flock($fh, LOCK_EX | LOCK_NB) or die "held\n";`,
        linger: String.raw`sleep 4;`,
      },
      {
        prelude: String.raw`use Fcntl qw(:flock O_RDONLY O_CREAT);`,
        inline: {
          hold: String.raw`my ($f, $key) = @_; sysopen(my $fh, $f, O_RDONLY | O_CREAT, 0600) or die "open: $!\n"; flock($fh, LOCK_SH | LOCK_NB) or die "busy\n"; $held{$key} = $fh;`,
          release: String.raw`delete $held{$_[0]};`,
        },
      },
    );
    try {
      await helper.run('hold', [file, 'a'], 10_000);
      await expect(helper.run('free', [file], 10_000)).rejects.toThrow(/^free: held$/);
      // A child forked while the lock is held, still running after the release: its copy goes
      // as soon as it runs (a loaded machine may take a moment to schedule it), long before it ends.
      const lingering = helper.run('linger', [], 20_000);
      await helper.run('release', ['a'], 10_000);
      const until = Date.now() + 2_500;
      for (;;) {
        const free = await helper.run('free', [file], 10_000).then(() => true, () => false);
        if (free) break;
        expect(Date.now(), 'the lock was still held, by the lingering child').toBeLessThan(until);
        await new Promise((r) => setTimeout(r, 50));
      }
      await lingering;
    } finally {
      helper.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
