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

/**
 * Takes one idle sandbox out of service, atomically against leasing: it must still be idle
 * with the same function loaded (ACQUIRE flips state to busy in the same atomic step that pops
 * it), and `lastUsed` / `createdAt` must still be past the cutoffs. The id leaves its idle list
 * and the record becomes `reaping` until `leaseUntil`; its executor slot is only given back
 * (FORGET) once the executor has killed it, so no new sandbox is placed on a full executor.
 * KEYS: sandbox hash, idle list. ARGV: id, fn, lastUsedBefore, createdBefore, now, reapMs.
 * → executor id | nil
 */
export const REAP = `
if redis.call('HGET', KEYS[1], 'state') ~= 'idle' then return nil end
if (redis.call('HGET', KEYS[1], 'fn') or '') ~= ARGV[2] then return nil end
local lastUsed = tonumber(redis.call('HGET', KEYS[1], 'lastUsed') or '0')
local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '0')
if lastUsed >= tonumber(ARGV[3]) and created >= tonumber(ARGV[4]) then return nil end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'reaping', 'owner', '', 'leaseUntil', tonumber(ARGV[5]) + tonumber(ARGV[6]))
return redis.call('HGET', KEYS[1], 'executor')
`;

/**
 * Takes back a sandbox whose owner vanished: busy (or being reaped) past its leaseUntil, or
 * booting for longer than a boot can take. Like REAP it only marks it `reaping`.
 * KEYS: sandbox hash. ARGV: now, bootedBefore, reapMs. → executor id | nil
 */
export const RECLAIM = `
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'busy' or state == 'reaping' then
  if tonumber(redis.call('HGET', KEYS[1], 'leaseUntil') or '0') >= tonumber(ARGV[1]) then return nil end
elseif state == 'booting' then
  if tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '0') >= tonumber(ARGV[2]) then return nil end
else
  return nil
end
redis.call('HSET', KEYS[1], 'state', 'reaping', 'owner', '', 'leaseUntil', tonumber(ARGV[1]) + tonumber(ARGV[3]))
return redis.call('HGET', KEYS[1], 'executor')
`;

/** Takes an executor out of placement only if it holds no sandboxes. KEYS: executors zset. ARGV: id. → 1 | 0 */
export const RETIRE_EMPTY = `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/**
 * Picks the least recently used idle instance (a sandbox holding some function) of a template,
 * last used before `usedBefore`, and takes it out of service like REAP, to make room for a
 * function that has none (or for the template's warm pool) when the template is full.
 * KEYS: template set. ARGV: prefix, template, now, reapMs, usedBefore. → {id, executor} | nil
 */
export const EVICT = `
local best, bestUsed
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local st = redis.call('HMGET', ARGV[1] .. ':sbx:' .. id, 'state', 'fn', 'lastUsed')
  if st[1] == 'idle' and st[2] and st[2] ~= '' then
    local used = tonumber(st[3] or '0')
    if used < tonumber(ARGV[5]) and (not best or used < bestUsed) then best, bestUsed = id, used end
  end
end
if not best then return nil end
local key = ARGV[1] .. ':sbx:' .. best
redis.call('LREM', ARGV[1] .. ':hot:' .. ARGV[2] .. ':' .. redis.call('HGET', key, 'fn'), 0, best)
redis.call('HSET', key, 'state', 'reaping', 'owner', '', 'leaseUntil', tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {best, redis.call('HGET', key, 'executor')}
`;
