"""What a redis-py based session store does against sessiond, on the
default configuration: Flask-Session's 31-day and a one-year lifetime,
reading sessions back, MGET (Django's get_many), INCR, keys without expiry,
and transactions (Django's set_many, redis-py pipelines) with WATCH.

Usage: python3 redis_py_store.py HOST PORT  -> prints "ok" or fails.
"""

import sys

import redis

host, port = sys.argv[1], int(sys.argv[2])
r = redis.Redis(host=host, port=port)
other = redis.Redis(host=host, port=port)

# Flask-Session's default lifetime (31 days) and a one-year "remember me".
month, year = 31 * 86400, 365 * 86400
assert r.set("session:flask", b"\x81\xa4user\xa5alice", ex=month)
assert r.setex("session:remember", year, "{}")
assert month - 2 <= r.ttl("session:flask") <= month, r.ttl("session:flask")
assert year - 2 <= r.ttl("session:remember") <= year, r.ttl("session:remember")
assert r.get("session:flask") == b"\x81\xa4user\xa5alice"

# A key written without expiry keeps none (Django's timeout=None).
assert r.set("forever", "v")
assert r.ttl("forever") == -1
assert r.persist("session:flask") is True
assert r.ttl("session:flask") == -1

# get_many and counters.
assert r.mget(["session:remember", "missing"]) == [b"{}", None]
assert r.incr("hits") == 1
assert r.incrby("hits", 41) == 42

# A transaction (set_many): every reply, in order.
with r.pipeline(transaction=True) as p:
    p.set("a", 1).incr("a").get("a").expire("a", 60)
    assert p.execute() == [True, 2, b"2", True]

# WATCH: a change by another client makes the transaction fail, applying
# nothing.
with r.pipeline(transaction=True) as p:
    p.watch("w")
    other.set("w", "theirs")
    p.multi()
    p.set("w", "mine")
    try:
        p.execute()
        raise AssertionError("EXEC ran although a watched key changed")
    except redis.WatchError:
        pass
assert r.get("w") == b"theirs"

# A transaction with a command refused while queuing applies nothing.
with r.pipeline(transaction=True) as p:
    p.set("never", "applied")
    p.execute_command("NOSUCHCOMMAND")
    try:
        p.execute()
        raise AssertionError("EXEC ran a transaction with a refused command")
    except redis.ResponseError:
        pass
assert r.get("never") is None

# The whole session gone.
assert r.delete("session:remember") == 1
assert r.get("session:remember") is None
print("ok")
