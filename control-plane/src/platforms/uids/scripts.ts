/**
 * Lua scripts of the host uid-range allocator (ranges.ts is their only caller). One HASH per
 * host holds every claim: field `b:<block>` → executor id for each block taken, and
 * `x:<executorId>` → `<firstBlock>:<blocks>:<deployment>`. Each script runs atomically, so
 * control planes (and replicas) sharing one Redis never hand out the same block twice.
 */

/**
 * Claims `blocks` consecutive free blocks at or above `fromBlock` for an executor, or returns
 * the claim it already holds (a control plane that adopts it after a restart keeps its range).
 * KEYS: ranges hash. ARGV: executorId, deployment, blocks, maxBlocks, fromBlock.
 * → {firstBlock, blocks} | nil when no run of free blocks is left | error when another
 * deployment holds a claim under the same executor id.
 */
export const CLAIM = `
local held = redis.call('HGET', KEYS[1], 'x:' .. ARGV[1])
if held then
  local first, count, deployment = string.match(held, '^(%d+):(%d+):(.*)$')
  if deployment ~= ARGV[2] then return redis.error_reply('UIDCLAIM executor id held by another deployment') end
  return {tonumber(first), tonumber(count)}
end
local need = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local first = tonumber(ARGV[5])
local run = 0
local b = first
while b < max and run < need do
  if redis.call('HEXISTS', KEYS[1], 'b:' .. b) == 1 then
    run = 0
    first = b + 1
  else
    run = run + 1
  end
  b = b + 1
end
if run < need then return nil end
for i = first, first + need - 1 do redis.call('HSET', KEYS[1], 'b:' .. i, ARGV[1]) end
redis.call('HSET', KEYS[1], 'x:' .. ARGV[1], first .. ':' .. need .. ':' .. ARGV[2])
return {first, need}
`;

/**
 * Gives an executor's blocks back, only if the claim is this deployment's.
 * KEYS: ranges hash. ARGV: executorId, deployment. → 1 | 0
 */
export const RELEASE = `
local held = redis.call('HGET', KEYS[1], 'x:' .. ARGV[1])
if not held then return 0 end
local first, count, deployment = string.match(held, '^(%d+):(%d+):(.*)$')
if deployment ~= ARGV[2] then return 0 end
for i = tonumber(first), tonumber(first) + tonumber(count) - 1 do
  if redis.call('HGET', KEYS[1], 'b:' .. i) == ARGV[1] then redis.call('HDEL', KEYS[1], 'b:' .. i) end
end
redis.call('HDEL', KEYS[1], 'x:' .. ARGV[1])
return 1
`;
