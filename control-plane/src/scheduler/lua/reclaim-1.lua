--[[
  Takes back a sandbox whose owner vanished: busy (or being reaped) past its leaseUntil, or
  booting for longer than a boot can take. Like reap it only marks it `reaping`.

  KEYS[1] sandbox hash
  ARGV[1] now (ms)   ARGV[2] booted before (now - the boot limit)   ARGV[3] reapMs
  Returns the executor id, or nil when the lease is still good.
]]
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
