--[[
  Drops an executor that is gone from scheduling at once: out of placement, its record deleted,
  and every sandbox record it held forgotten (and its id taken off the idle lists), so no acquire
  hands out a sandbox on it and no reserve places one there.

  KEYS[1] executors zset of the template   KEYS[2] sandbox ids set of the template   KEYS[3] executor record
  ARGV[1] executor id   ARGV[2] sandbox key prefix   ARGV[3] hot list prefix   ARGV[4] warm list prefix
  Returns {dropped, forgotten id...}: dropped is 1 for the one caller that took it out of
  placement (that caller logs it and stops it), 0 for everyone after.
]]
local dropped = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
local out = {dropped}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[2] .. id
  local r = redis.call('HMGET', key, 'executor', 'fn', 'runner')
  if r[1] == ARGV[1] then
    if r[2] and r[2] ~= '' then redis.call('LREM', ARGV[3] .. r[2], 0, id) else redis.call('LREM', ARGV[4] .. (r[3] or ''), 0, id) end
    redis.call('DEL', key)
    redis.call('SREM', KEYS[2], id)
    out[#out + 1] = id
  end
end
return out
