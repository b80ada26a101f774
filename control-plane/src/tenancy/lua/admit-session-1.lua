--[[
  Admits one session of a tenant if its live sessions stay within the sessions limit and their
  sandboxes' memory within the memory limit. Atomic, so two replicas cannot both pass.

  KEYS[1] the tenant's sessions (HASH: session id -> `<memoryMB>:<admitted at ms>`)
  ARGV[1] session id
  ARGV[2] its sandbox's memory, MB
  ARGV[3] now (ms)
  ARGV[4] sessions limit
  ARGV[5] memory limit, MB

  Returns {1} when admitted, else {0, quota name, used}.
]]
local key = KEYS[1]
local mb = tonumber(ARGV[2])
local values = redis.call('HVALS', key)
local memory = 0
for _, v in ipairs(values) do memory = memory + tonumber(string.match(v, '^(%d+)')) end
if #values >= tonumber(ARGV[4]) then return {0, 'sessions', #values} end
if memory + mb > tonumber(ARGV[5]) then return {0, 'memoryMB', memory} end
redis.call('HSET', key, ARGV[1], mb .. ':' .. ARGV[3])
return {1}
