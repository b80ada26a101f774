--[[
  Reserves room for a new sandbox on the least-loaded executor of a template with a free slot,
  within the template's total, and records it as `booting`, owned by the caller.

  KEYS[1] executors zset of the template   KEYS[2] sandbox ids set of the template   KEYS[3] sandbox hash
  ARGV[1] sandboxes per executor   ARGV[2] template max   ARGV[3] sandbox id   ARGV[4] template
  ARGV[5] runner   ARGV[6] owner   ARGV[7] now (ms)
  Returns the executor id, or nil when no executor has room.
]]
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2]) then return nil end
local ex = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1)
if #ex == 0 then return nil end
redis.call('ZINCRBY', KEYS[1], 1, ex[1])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'id', ARGV[3], 'executor', ex[1], 'template', ARGV[4], 'runner', ARGV[5],
  'state', 'booting', 'owner', ARGV[6], 'fn', '', 'createdAt', ARGV[7], 'lastUsed', ARGV[7])
return ex[1]
