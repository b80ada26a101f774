--[[
  Leases an idle sandbox: an instance of the function (hot) first, then a pre-booted one (warm).
  Ids in the idle lists are only hints: an id is taken only if its record still says `idle`, so
  stale entries (a sandbox reaped, forgotten or lost meanwhile) are dropped on the way.

  KEYS[1] hot list of the function     KEYS[2] warm list of the runner
  ARGV[1] sandbox key prefix (Keys.sandbox(''))
  ARGV[2] owner   ARGV[3] now (ms)   ARGV[4] leaseMs
  Returns {id, executorId, 'hot' | 'warm'} or nil.
]]
local function take(list)
  while true do
    local id = redis.call('LPOP', list)
    if not id then return nil end
    local key = ARGV[1] .. id
    if redis.call('HGET', key, 'state') == 'idle' then
      redis.call('HSET', key, 'state', 'busy', 'owner', ARGV[2], 'leaseUntil', tonumber(ARGV[3]) + tonumber(ARGV[4]))
      return {id, redis.call('HGET', key, 'executor')}
    end
  end
end
local r = take(KEYS[1])
if r then return {r[1], r[2], 'hot'} end
r = take(KEYS[2])
if r then return {r[1], r[2], 'warm'} end
return nil
