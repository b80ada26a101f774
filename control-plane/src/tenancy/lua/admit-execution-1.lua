--[[
  Admits one execution of a tenant if its concurrent executions (queued + running) stay within
  the limit. Atomic, so two replicas submitting at once cannot both take the last place.

  KEYS[1] the tenant's in-flight set (ZSET: `<template>/<job id>` -> admitted at, ms)
  ARGV[1] member
  ARGV[2] now (ms)
  ARGV[3] limit
  ARGV[4] stale before (ms): members admitted earlier are dropped first, so usage that no
          control plane released (it crashed) cannot be held forever

  Returns {admitted (1/0), in flight before this one}. A member already there (an idempotent
  resubmission) is admitted without being counted twice.
]]
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[4])
local used = redis.call('ZCARD', key)
if redis.call('ZSCORE', key, ARGV[1]) then return {1, used - 1} end
if used >= tonumber(ARGV[3]) then return {0, used} end
redis.call('ZADD', key, ARGV[2], ARGV[1])
return {1, used}
