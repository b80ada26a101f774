--[[
  Picks the least recently used idle instance (a sandbox holding some function) of a template,
  last used before `usedBefore`, and takes it out of service like reap, to make room for a
  function that has none (or for the template's warm pool) when the template is full.

  KEYS[1] sandbox ids set of the template
  ARGV[1] sandbox key prefix   ARGV[2] hot list prefix (Keys.hot(template, ''))
  ARGV[3] now (ms)   ARGV[4] reapMs   ARGV[5] used before
  Returns {id, executorId} or nil.
]]
local best, bestUsed
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local st = redis.call('HMGET', ARGV[1] .. id, 'state', 'fn', 'lastUsed')
  if st[1] == 'idle' and st[2] and st[2] ~= '' then
    local used = tonumber(st[3] or '0')
    if used < tonumber(ARGV[5]) and (not best or used < bestUsed) then best, bestUsed = id, used end
  end
end
if not best then return nil end
local key = ARGV[1] .. best
redis.call('LREM', ARGV[2] .. redis.call('HGET', key, 'fn'), 0, best)
redis.call('HSET', key, 'state', 'reaping', 'owner', '', 'leaseUntil', tonumber(ARGV[3]) + tonumber(ARGV[4]))
return {best, redis.call('HGET', key, 'executor')}
