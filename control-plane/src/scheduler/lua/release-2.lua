--[[
  Puts a leased sandbox back on an idle list, as an instance of `fn` (or warm when empty). Only
  the lease's owner can: a late release of an old lease never frees someone else's, and a record
  forgotten meanwhile (its executor was lost) is not brought back.

  KEYS[1] sandbox hash   KEYS[2] idle list to put it on
  ARGV[1] owner   ARGV[2] now (ms)   ARGV[3] function key ('' for warm)   ARGV[4] sandbox id
  Returns 1, or 0 when the caller no longer owns it.
]]
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'idle', 'owner', '', 'fn', ARGV[3], 'lastUsed', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[4])
return 1
