--[[
  Marks a sandbox that finished booting as leased (`busy`) by the one that reserved it. Nothing
  happens if the record went meanwhile (its executor was dropped): HSET would bring back a
  partial record that nothing lists.

  KEYS[1] sandbox hash
  ARGV[1] owner   ARGV[2] leaseUntil (ms)
  Returns 1, or 0 when the record is gone or someone else's.
]]
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= 'booting' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'busy', 'leaseUntil', ARGV[2])
return 1
