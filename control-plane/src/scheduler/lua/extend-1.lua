--[[
  Moves a lease's end, for its owner only (a session kept alive past its first expiry).

  KEYS[1] sandbox hash
  ARGV[1] owner   ARGV[2] leaseUntil (ms)
  Returns 1, or 0 when the record is gone or someone else's.
]]
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'busy' then return 0 end
redis.call('HSET', KEYS[1], 'leaseUntil', ARGV[2])
return 1
