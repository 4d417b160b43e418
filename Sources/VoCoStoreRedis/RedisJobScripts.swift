// MARK: - The queue's scripts (Lua, run by EVAL on the slot of `{name}`)
//
// KEYS[1] is the stream, KEYS[2] the counts hash, ARGV[1] the prefix of the queue's keys (job
// hashes and collection streams share the stream's hash tag, so they are in the same slot).
// Every script is safe to run again after a lost reply: enqueue returns the first run's ids (by
// its token), claim and renew leave leases held by the caller, finish accepts the caller's own
// finished jobs, release leaves queued jobs queued.

extension RedisJobQueue {
    private static let prelude = """
        local stream, counts, prefix = KEYS[1], KEYS[2], ARGV[1]
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local function ms(x) return string.format('%.0f', x) end

        """

    /// ARGV[2] the token key; then per job: collection, its jobs stream, source, model, attempts,
    /// enqueuedAt, image digest ('' none), error ('' none). Returns the new ids.
    static let enqueueScript = prelude + """
        if redis.call('EXISTS', ARGV[2]) == 1 then return redis.call('LRANGE', ARGV[2], 0, -1) end
        local ids = {}
        for i = 3, #ARGV, 8 do
          local id = redis.call('XADD', stream, '*', 'collection', ARGV[i], 'source', ARGV[i + 2])
          local key = prefix .. 'job:' .. id
          redis.call('HSET', key, 'collection', ARGV[i], 'source', ARGV[i + 2], 'model', ARGV[i + 3], 'state', 'queued',
                     'attempts', ARGV[i + 4], 'enqueuedAt', ARGV[i + 5], 'updatedMs', ms(now))
          if ARGV[i + 6] ~= '' then redis.call('HSET', key, 'imageDigest', ARGV[i + 6]) end
          if ARGV[i + 7] ~= '' then redis.call('HSET', key, 'error', ARGV[i + 7]) end
          redis.call('XADD', ARGV[i + 1], id, 'job', id)
          redis.call('RPUSH', ARGV[2], id)
          ids[#ids + 1] = id
        end
        redis.call('HINCRBY', counts, 'queued', #ids)
        redis.call('EXPIRE', ARGV[2], 86400)
        return ids
        """

    /// ARGV[2] worker, [3] limit, [4] lease ms, [5] horizon ms. Takes back entries idle for the
    /// horizon (leases that ended, released jobs), oldest id first, then new entries; sets each
    /// one's lease; returns [id, job fields] pairs.
    static let claimScript = prelude + """
        local worker, limit, lease, horizon = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local ids = {}
        local cursor = '0-0'
        repeat
          local r = redis.call('XAUTOCLAIM', stream, 'workers', worker, ms(horizon), cursor, 'COUNT', limit - #ids, 'JUSTID')
          cursor = r[1]
          for _, id in ipairs(r[2]) do ids[#ids + 1] = id end
        until cursor == '0-0' or #ids >= limit
        if #ids < limit then
          local r = redis.call('XREADGROUP', 'GROUP', 'workers', worker, 'COUNT', limit - #ids, 'STREAMS', stream, '>')
          if r then for _, entry in ipairs(r[1][2]) do ids[#ids + 1] = entry[1] end end
        end
        local out = {}
        for _, id in ipairs(ids) do
          local key = prefix .. 'job:' .. id
          local state = redis.call('HGET', key, 'state')
          if state == 'queued' or state == 'running' then
            redis.call('XCLAIM', stream, 'workers', worker, 0, id, 'TIME', ms(now + lease - horizon), 'JUSTID')
            if state == 'queued' then
              redis.call('HINCRBY', counts, 'queued', -1)
              redis.call('HINCRBY', counts, 'running', 1)
            end
            redis.call('HINCRBY', key, 'attempts', 1)
            redis.call('HSET', key, 'state', 'running', 'worker', worker, 'leaseUntilMs', ms(now + lease), 'updatedMs', ms(now))
            out[#out + 1] = {id, redis.call('HGETALL', key)}
          else
            redis.call('XACK', stream, 'workers', id)
          end
        end
        return out
        """

    /// ARGV[2] worker, [3] lease ms, [4] horizon ms, [5...] ids. Returns the ids the worker no longer holds.
    static let renewScript = prelude + """
        local worker, lease, horizon = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
        local lost = {}
        for i = 5, #ARGV do
          local id = ARGV[i]
          local key = prefix .. 'job:' .. id
          local v = redis.call('HMGET', key, 'state', 'worker')
          if v[1] == 'running' and v[2] == worker then
            redis.call('XCLAIM', stream, 'workers', worker, 0, id, 'TIME', ms(now + lease - horizon), 'JUSTID')
            redis.call('HSET', key, 'leaseUntilMs', ms(now + lease), 'updatedMs', ms(now))
          else
            lost[#lost + 1] = id
          end
        end
        return lost
        """

    /// ARGV[2] worker; then per outcome: id, 'done' or 'failed', image digest ('' none), '1' when
    /// an error follows else '0', error. Returns the ids the worker does not hold.
    static let finishScript = prelude + """
        local worker = ARGV[2]
        local notHeld = {}
        for i = 3, #ARGV, 5 do
          local id, state = ARGV[i], ARGV[i + 1]
          local key = prefix .. 'job:' .. id
          local v = redis.call('HMGET', key, 'state', 'worker', 'finishedBy')
          if v[1] == 'running' and v[2] == worker then
            redis.call('XACK', stream, 'workers', id)
            redis.call('HINCRBY', counts, 'running', -1)
            redis.call('HINCRBY', counts, state, 1)
            redis.call('HSET', key, 'state', state, 'finishedBy', worker, 'updatedMs', ms(now))
            redis.call('HDEL', key, 'worker', 'leaseUntilMs')
            if ARGV[i + 2] ~= '' then redis.call('HSET', key, 'imageDigest', ARGV[i + 2]) end
            if ARGV[i + 3] == '1' then redis.call('HSET', key, 'error', ARGV[i + 4]) else redis.call('HDEL', key, 'error') end
          elseif not ((v[1] == 'done' or v[1] == 'failed') and v[3] == worker) then
            notHeld[#notHeld + 1] = id
          end
        end
        return notHeld
        """

    /// ARGV[2] worker, [3] horizon ms, [4...] ids: the worker's running jobs become queued and
    /// claimable at once (idle for the horizon).
    static let releaseScript = prelude + """
        local worker, horizon = ARGV[2], tonumber(ARGV[3])
        for i = 4, #ARGV do
          local id = ARGV[i]
          local key = prefix .. 'job:' .. id
          local v = redis.call('HMGET', key, 'state', 'worker')
          if v[1] == 'running' and v[2] == worker then
            redis.call('XCLAIM', stream, 'workers', worker, 0, id, 'TIME', ms(now - horizon), 'JUSTID')
            redis.call('HINCRBY', counts, 'running', -1)
            redis.call('HINCRBY', counts, 'queued', 1)
            redis.call('HSET', key, 'state', 'queued', 'updatedMs', ms(now))
            redis.call('HDEL', key, 'worker', 'leaseUntilMs')
          end
        end
        return 0
        """
}
