import type { components } from './gen/schema.gen.js';

/** Names for the generated schema types (gen/schema.gen.ts, from the OpenAPI document). */
type S = components['schemas'];
export type SessionInfo = S['Session'];
export type CreateSessionParams = S['CreateSession'];
export type ProcessRequest = S['ProcessRequest'];
export type ProcessResult = S['ProcessResult'];
export type ProcessInfo = S['ProcessInfo'];
export type FileInfo = S['FileInfo'];
export type FunctionInfo = S['Function'];
export type FunctionCreate = S['FunctionCreate'];
export type FunctionUpdate = S['FunctionUpdate'];
export type Execution = S['Execution'];
export type Template = S['Template'];
export type SessionTransition = S['SessionTransition'];
export type SessionUsage = S['SessionUsage'];
export type SnapshotInfo = S['Snapshot'];
export type VolumeInfo = S['Volume'];
export type CreateVolumeParams = S['CreateVolume'];
export type KilnErrorBody = S['Error'];
export type { components, operations, paths } from './gen/schema.gen.js';
