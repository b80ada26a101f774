/**
 * Which tools each MCP profile offers. The first three match the tool sets agents configured
 * for ElevoSandbox already know (same names, same counts), so switching them to Kiln needs no
 * prompt changes. This module is plain data so the `kiln` CLI can check a profile name
 * without loading the server.
 */
export const PROFILES = {
  executor: ['process_run'],
  developer: ['process_run', 'file_read', 'file_write', 'file_list', 'file_mkdir', 'file_remove'],
  full: [
    'sandbox_create',
    'sandbox_get',
    'sandbox_list',
    'sandbox_delete',
    'process_run',
    'process_kill',
    'file_read',
    'file_write',
    'file_list',
    'file_mkdir',
    'file_remove',
    'file_move',
    'file_copy',
    'file_info',
  ],
  functions: ['function_list', 'function_invoke', 'code_run'],
  /**
   * Sessions that last: pause/resume, snapshots and forks, with enough of the sandbox and file
   * tools to use them (a profile of its own, so `full` keeps ElevoSandbox's 14 tools).
   */
  lifecycle: [
    'sandbox_create',
    'sandbox_get',
    'sandbox_list',
    'sandbox_delete',
    'sandbox_pause',
    'sandbox_resume',
    'sandbox_fork',
    'snapshot_create',
    'snapshot_list',
    'snapshot_delete',
    'sandbox_create_from_snapshot',
    'process_run',
    'file_read',
    'file_write',
    'file_list',
  ],
  /** Notebook-style work: stateful Python and JavaScript contexts in a code-interpreter sandbox, and its files. */
  interpreter: ['run_code', 'file_read', 'file_write', 'file_list'],
} as const;

export type ProfileName = keyof typeof PROFILES;
export type ToolName = (typeof PROFILES)[ProfileName][number];

export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[];

export function isProfile(name: string): name is ProfileName {
  return Object.hasOwn(PROFILES, name);
}
