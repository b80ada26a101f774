--[[
  Forgets a sandbox: its record, its id in the template's set and in whichever idle list it sits
  on (a stale id there would count as a warm sandbox that does not exist), and gives its executor
  slot back.

  KEYS[1] sandbox hash   KEYS[2] sandbox ids set of the template   KEYS[3] executors zset of the template
  ARGV[1] sandbox id   ARGV[2] hot list prefix (Keys.hot(template, ''))   ARGV[3] warm list prefix (Keys.warm(template, ''))
  Returns 1, or 0 when there was no record.
]]
local r = redis.call('HMGET', KEYS[1], 'executor', 'fn', 'runner')
redis.call('SREM', KEYS[2], ARGV[1])
if not r[1] then return 0 end
if r[2] and r[2] ~= '' then
  redis.call('LREM', ARGV[2] .. r[2], 0, ARGV[1])
else
  redis.call('LREM', ARGV[3] .. (r[3] or ''), 0, ARGV[1])
end
redis.call('DEL', KEYS[1])
if redis.call('ZSCORE', KEYS[3], r[1]) then redis.call('ZINCRBY', KEYS[3], -1, r[1]) end
return 1
