--[[
  Takes an executor out of placement, only if it holds no sandbox.

  KEYS[1] executors zset of the template
  ARGV[1] executor id
  Returns 1 when it was taken out, else 0.
]]
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
