"""Real-world Redis scripts through redis-py, unchanged, on one server.

Usage: redis_py_scripts.py PORT. Prints one JSON object of what each
script answered, so tests/it/redis_scripts.rs can run this against sessiond
and against real redis-server and compare.

The scripts are the common shapes found in rate limiters and lock
libraries:
- a fixed-window counter with expiry (INCR, EXPIRE on the first hit);
- a sliding-window counter (the weighted previous and current windows,
  two keys, GET/INCR/EXPIRE);
- the compare-and-delete lock release in a spelling other than phpredis's,
  through redis-py's Script object (EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA);
- replies of every type, and errors.
"""

import json
import sys

import redis

FIXED_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
"""

SLIDING_WINDOW = """
-- KEYS[1]: this window's counter, KEYS[2]: the previous window's.
-- ARGV: limit, window (s), ms elapsed in this window.
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2]) * 1000
local elapsed = tonumber(ARGV[3])
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local weighted = previous * ((window_ms - elapsed) / window_ms) + current
if weighted >= limit then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""

RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""

SHAPES = """
return {1, 'two', 3.9, {ok = 'fine'}, false, {4, {5}}, redis.sha1hex('x')}
"""


def error_code(f):
    try:
        f()
        return None
    except redis.exceptions.ResponseError as e:
        return str(e).split(" ")[0]


def main():
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    out = {}

    counter = r.register_script(FIXED_WINDOW)
    out["fixed"] = [counter(keys=["rl:fixed:u42"], args=[60]) for _ in range(3)]
    ttl = r.ttl("rl:fixed:u42")
    out["fixed_ttl_set"] = 0 < ttl <= 60

    sliding = r.register_script(SLIDING_WINDOW)
    r.set("rl:slide:u42:prev", 4)
    keys = ["rl:slide:u42:cur", "rl:slide:u42:prev"]
    # Limit 5 a minute, half-way through the window: the previous window
    # weighs 2, so three more pass and the fourth is refused.
    out["sliding"] = [sliding(keys=keys, args=[5, 60, 30000]) for _ in range(5)]
    out["sliding_count"] = r.get("rl:slide:u42:cur")

    release = r.register_script(RELEASE)
    r.set("lock:order:7", "owner-a", ex=10, nx=True)
    out["release_other"] = release(keys=["lock:order:7"], args=["owner-b"])
    out["still_held"] = r.get("lock:order:7")
    out["release_own"] = release(keys=["lock:order:7"], args=["owner-a"])
    out["gone"] = r.exists("lock:order:7")
    out["sha_known"] = r.script_exists(release.sha)[0]

    out["shapes"] = r.eval(SHAPES, 0)
    out["returned_error"] = error_code(lambda: r.eval("return {err='MYERR it failed'}", 0))
    r.set("text", "hello")
    out["call_error"] = error_code(
        lambda: r.eval("return redis.call('incr', KEYS[1])", 1, "text"))
    out["pcall_error"] = r.eval(
        "local e = redis.pcall('incr', KEYS[1]); return e['err']", 1, "text")
    out["status"] = r.eval("return redis.status_reply('DONE')", 0)
    out["noscript"] = error_code(lambda: r.evalsha("0" * 40, 0))
    r.script_flush()
    out["flushed"] = r.script_exists(release.sha)[0]
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
