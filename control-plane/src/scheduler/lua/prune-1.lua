--[[
  Drops from an idle list every id that does not belong there: no record (forgotten, or lost in
  a restart), not idle, idle on another list, or listed twice. Keeps the order of the rest.

  KEYS[1] the idle list
  ARGV[1] sandbox key prefix   ARGV[2] hot list prefix of the template   ARGV[3] warm list prefix of the template
  Returns how many ids are left (the true number of idle sandboxes on it).
]]
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local seen, keep, dropped = {}, {}, 0
for _, id in ipairs(ids) do
  local r = redis.call('HMGET', ARGV[1] .. id, 'state', 'fn', 'runner')
  local list
  if r[2] and r[2] ~= '' then list = ARGV[2] .. r[2] else list = ARGV[3] .. (r[3] or '') end
  if r[1] == 'idle' and list == KEYS[1] and not seen[id] then
    seen[id] = true
    keep[#keep + 1] = id
  else
    dropped = dropped + 1
  end
end
if dropped > 0 then
  redis.call('DEL', KEYS[1])
  if #keep > 0 then redis.call('RPUSH', KEYS[1], unpack(keep)) end
end
return #keep
