import { describe, expect, it } from 'vitest';
import { fromWorkspace, processCwd, toWorkspace } from './paths.js';

describe('E2B paths', () => {
  it('maps /home/user and relative paths to the workspace, and leaves the rest for the executor to refuse', () => {
    expect(toWorkspace('/home/user')).toBe('/workspace');
    expect(toWorkspace('/home/user/')).toBe('/workspace');
    expect(toWorkspace('/home/user/a/b.txt')).toBe('/workspace/a/b.txt');
    expect(toWorkspace('a/b.txt')).toBe('/workspace/a/b.txt');
    expect(toWorkspace('')).toBe('/workspace');
    expect(toWorkspace('/workspace/x')).toBe('/workspace/x');
    // Not under home once normalised: passed on as given, and the executor's check refuses it.
    expect(toWorkspace('/home/user/../../etc/passwd')).toBe('/home/user/../../etc/passwd');
    expect(toWorkspace('/home/username/x')).toBe('/home/username/x');
    expect(toWorkspace('../../etc/passwd')).toBe('/etc/passwd');
  });

  it('names workspace paths as E2B clients know them', () => {
    expect(fromWorkspace('/workspace')).toBe('/home/user');
    expect(fromWorkspace('/workspace/a')).toBe('/home/user/a');
    expect(fromWorkspace('/workspaces/a')).toBe('/workspaces/a');
    expect(processCwd(undefined)).toBe('/home/user');
    expect(processCwd('/tmp')).toBe('/tmp');
  });
});
