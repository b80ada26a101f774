--[[
  Takes one idle sandbox out of service, atomically against leasing: it must still be idle with
  the same function loaded (acquire flips state to busy in the same atomic step that pops it), and
  `lastUsed` or `createdAt` must still be past its cutoff. The id leaves its idle list and the
  record becomes `reaping` until `leaseUntil`; its executor slot is only given back (forget) once
  the executor has killed it, so no new sandbox is placed on a full executor.

  KEYS[1] sandbox hash   KEYS[2] its idle list
  ARGV[1] sandbox id   ARGV[2] function key   ARGV[3] lastUsed before   ARGV[4] createdAt before
  ARGV[5] now (ms)   ARGV[6] reapMs
  Returns the executor id, or nil when it was leased (or changed) meanwhile.
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'idle' then return nil end
if (redis.call('HGET', KEYS[1], 'fn') or '') ~= ARGV[2] then return nil end
local lastUsed = tonumber(redis.call('HGET', KEYS[1], 'lastUsed') or '0')
local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '0')
if lastUsed >= tonumber(ARGV[3]) and created >= tonumber(ARGV[4]) then return nil end
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'reaping', 'owner', '', 'leaseUntil', tonumber(ARGV[5]) + tonumber(ARGV[6]))
return redis.call('HGET', KEYS[1], 'executor')
