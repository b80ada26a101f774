/**
 * Lua scripts that make leasing atomic in Redis, so several control-plane replicas sharing
 * one Redis can never lease the same sandbox twice. Sandbox ids in the idle lists are only
 * hints: a script takes an id only if its record still says `idle`, so stale entries (a
 * sandbox reaped or lost meanwhile) are skipped and dropped.
 */

/** KEYS: hot list, warm list. ARGV: prefix, owner, now, leaseMs. → {id, executor, startType} | nil */
export const ACQUIRE = `
local function take(list)
  while true do
    local id = redis.call('LPOP', list)
    if not id then return nil end
    local key = ARGV[1] .. ':sbx:' .. id
    if redis.call('HGET', key, 'state') == 'idle' then
      redis.call('HSET', key, 'state', 'busy', 'owner', ARGV[2], 'leaseUntil', tonumber(ARGV[3]) + tonumber(ARGV[4]))
      return {id, redis.call('HGET', key, 'executor')}
    end
  end
end
local r = take(KEYS[1])
if r then return {r[1], r[2], 'hot'} end
r = take(KEYS[2])
if r then return {r[1], r[2], 'warm'} end
return nil
`;

/** KEYS: sandbox hash, list to put it on. ARGV: owner, now, functionKey, sandboxId. → 1 | 0 */
export const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'idle', 'owner', '', 'fn', ARGV[3], 'lastUsed', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[4])
return 1
`;

/**
 * Reserves room for a new sandbox on the least-loaded executor of a template with a free slot,
 * within the template's total, and records the sandbox as `booting` and owned by the caller.
 * KEYS: executors zset, template sandboxes set, sandbox hash.
 * ARGV: perExecutorMax, templateMax, sandboxId, template, runner, owner, now. → executor id | nil
 */
export const RESERVE = `
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return nil end
local ex = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1)
if #ex == 0 then return nil end
redis.call('ZINCRBY', KEYS[1], 1, ex[1])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'id', ARGV[3], 'executor', ex[1], 'template', ARGV[4], 'runner', ARGV[5],
  'state', 'booting', 'owner', ARGV[6], 'fn', '', 'createdAt', ARGV[7], 'lastUsed', ARGV[7])
return ex[1]
`;

/** Forgets a sandbox and gives its slot back. KEYS: sandbox hash, template set, executors zset. ARGV: id. */
export const FORGET = `
local ex = redis.call('HGET', KEYS[1], 'executor')
if not ex then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('ZSCORE', KEYS[3], ex) then redis.call('ZINCRBY', KEYS[3], -1, ex) end
return 1
`;
