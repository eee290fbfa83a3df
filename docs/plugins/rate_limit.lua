-- A per-session rate limit: at most `limit` calls in each `window` seconds.
-- Answers how many calls are left in the window, or -1 when over.
--   SESSION.PLUGIN <id> rate_limit 100 60
sessiond.register("rate_limit", function(s, limit, window)
  limit, window = tonumber(limit), tonumber(window)
  if not limit or not window or window <= 0 then
    error("usage: rate_limit <limit> <window seconds>")
  end
  local now = math.floor(sessiond.now_ms() / 1000)
  local start = tonumber(s:get("rate.start")) or 0
  local count = tonumber(s:get("rate.count")) or 0
  if now - start >= window then
    start, count = now, 0
  end
  if count >= limit then
    return -1
  end
  s:set("rate.start", start)
  s:set("rate.count", count + 1)
  return limit - count - 1
end)
