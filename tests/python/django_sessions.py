"""Django's session backends, unchanged, on a Redis port and a memcached
port: the cache backend and cached_db's cache half over Django's own
RedisCache (redis-py) and PyMemcacheCache. Logs in, reads the session
back, a one-year set_expiry, cycle_key (a login's new key), get_many /
set_many of the cache, logout. Prints one JSON object of what it saw, the
same shape whatever server answered, so the test compares sessiond's with
real redis-server's and memcached's.

Usage: python3 django_sessions.py REDIS_PORT MEMCACHED_PORT
"""

import importlib
import json
import sys

import django
from django.conf import settings

redis_port, memcached_port = sys.argv[1], sys.argv[2]
settings.configure(
    SECRET_KEY="test",
    INSTALLED_APPS=["django.contrib.sessions"],
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{redis_port}",
        },
        "memcached": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": f"127.0.0.1:{memcached_port}",
        },
    },
)
django.setup()

from django.core.cache import caches  # noqa: E402

YEAR = 365 * 86400


def session_case(alias):
    settings.SESSION_CACHE_ALIAS = alias
    backend = importlib.import_module("django.contrib.sessions.backends.cache")
    cache = caches[alias]
    seen = {}
    s = backend.SessionStore()
    s["user"] = "alice"
    s["passport"] = {"user": "42"}
    s.save()
    key = s.session_key
    again = backend.SessionStore(session_key=key)
    seen["read_back"] = again.get("user")
    seen["exists"] = again.exists(key)
    # A one-year "remember me".
    again.set_expiry(YEAR)
    again.save()
    seen["expiry_days"] = round(backend.SessionStore(session_key=key).get_expiry_age() / 86400)
    if alias == "default":
        # The Redis key's own TTL, as the cache wrote it.
        client = cache._cache.get_client(key, write=False)
        seen["ttl_days"] = round(client.ttl(cache.make_and_validate_key(backend.KEY_PREFIX + key)) / 86400)
    # A login keeps the data under a new key; the old one is gone.
    again.cycle_key()
    new_key = again.session_key
    seen["cycled"] = new_key != key
    seen["old_gone"] = backend.SessionStore(session_key=key).get("user")
    seen["new_user"] = backend.SessionStore(session_key=new_key).get("user")
    # The cache calls a session store and its app make.
    cache.set_many({"a": 1, "b": {"x": [1, 2]}}, timeout=None)
    seen["get_many"] = cache.get_many(["a", "b", "missing"])
    seen["incr"] = cache.incr("a", 41)
    seen["add_again"] = cache.add("a", 5)
    cache.delete_many(["a", "b"])
    seen["after_delete"] = cache.get_many(["a", "b"])
    # Logout.
    out = backend.SessionStore(session_key=new_key)
    out.flush()
    seen["after_logout"] = backend.SessionStore(session_key=new_key).get("user")
    seen["logged_out_exists"] = out.exists(new_key)
    return seen


print(json.dumps({"redis": session_case("default"), "memcached": session_case("memcached")}))
