// What express-session users see with the stock stores, unchanged, on their
// default settings: connect-redis (over node-redis and over ioredis) on a
// Redis port, connect-memcached on a memcached port. Logs in, reads the
// session back, a one-year "remember me", the store's length/ids/all/clear
// where it has them, logs out; then logs carol in and leaves her so. Prints one JSON object of what it saw, the
// same shape whatever server answered, so the test can compare sessiond's
// with real redis-server's and memcached's.
//
// Usage: node stores.mjs REDIS_PORT MEMCACHED_PORT

import express from "express";
import session from "express-session";
import RedisStore from "connect-redis";
import { createClient } from "redis";
import IORedis from "ioredis";
import connectMemcached from "connect-memcached";

const [redisPort, memcachedPort] = process.argv.slice(2).map(Number);
const YEAR_MS = 365 * 86400 * 1000;

/// An express app on a free port with `store`; resolves to its base URL
/// and the server.
function app(store) {
  const a = express();
  a.use(
    session({
      store,
      secret: "test secret",
      resave: false,
      saveUninitialized: false,
    }),
  );
  a.get("/login", (req, res) => {
    req.session.user = req.query.user;
    // What passport.js stores for a logged-in user.
    req.session.passport = { user: `${req.query.user}-id` };
    if (req.query.remember) req.session.cookie.maxAge = YEAR_MS;
    res.json({ ok: true });
  });
  a.get("/me", (req, res) => res.json({ user: req.session.user ?? null }));
  a.get("/logout", (req, res) =>
    req.session.destroy((err) => res.status(err ? 500 : 200).json({ ok: !err, err: String(err ?? "") })),
  );
  return new Promise((resolve) => {
    const server = a.listen(0, "127.0.0.1", () =>
      resolve({ base: `http://127.0.0.1:${server.address().port}`, server }),
    );
  });
}

/// A browser of one: keeps the session cookie.
function browser(base) {
  let cookie = "";
  return async (path) => {
    const res = await fetch(base + path, { headers: cookie ? { cookie } : {} });
    const set = res.headers.get("set-cookie");
    if (set) cookie = set.split(";")[0];
    return { status: res.status, body: await res.json() };
  };
}

const promisify = (store, method, ...args) =>
  new Promise((resolve, reject) =>
    store[method](...args, (err, value) => (err ? reject(err) : resolve(value))),
  );

/// An app on `store` with alice logged in and bob logged in for a year,
/// each read back: what was seen so far, and the browsers.
async function twoLogins(store) {
  const { base, server } = await app(store);
  const alice = browser(base);
  const bob = browser(base);
  const seen = {};
  seen.login = (await alice("/login?user=alice")).status;
  seen.me = (await alice("/me")).body.user;
  seen.remember = (await bob("/login?user=bob&remember=1")).status;
  seen.bob = (await bob("/me")).body.user;
  return { base, server, alice, bob, seen };
}

async function redisCase(name, client, ttlOf) {
  const store = new RedisStore({ client });
  await promisify(store, "clear");
  const { base, server, alice, bob, seen } = await twoLogins(store);
  const ids = await promisify(store, "ids");
  seen.ids = ids.length;
  // The one-year session keeps a year (to the minute).
  const ttls = await Promise.all(ids.map((id) => ttlOf("sess:" + id)));
  seen.ttls = ttls.map((t) => Math.round(t / 60)).sort((a, b) => a - b);
  seen.length = await promisify(store, "length");
  seen.all = (await promisify(store, "all")).map((s) => s.user).sort();
  seen.logout = (await alice("/logout")).status;
  seen.meAfterLogout = (await alice("/me")).body.user;
  seen.lengthAfterLogout = await promisify(store, "length");
  await promisify(store, "clear");
  seen.lengthAfterClear = await promisify(store, "length");
  seen.bobAfterClear = (await bob("/me")).body.user;
  // Left logged in, for the test to find through another door.
  seen.carol = (await browser(base)("/login?user=carol")).status;
  server.close();
  return [name, seen];
}

async function memcachedCase() {
  const MemcachedStore = connectMemcached(session);
  const store = new MemcachedStore({ hosts: [`127.0.0.1:${memcachedPort}`] });
  const { base, server, alice, bob, seen } = await twoLogins(store);
  seen.logout = (await alice("/logout")).status;
  seen.meAfterLogout = (await alice("/me")).body.user;
  seen.bobAfterAliceLeft = (await bob("/me")).body.user;
  seen.carol = (await browser(base)("/login?user=carol")).status;
  server.close();
  store.client.end();
  return ["connect-memcached", seen];
}

const nodeRedis = createClient({ url: `redis://127.0.0.1:${redisPort}` });
await nodeRedis.connect();
const ioredis = new IORedis({ host: "127.0.0.1", port: redisPort });
const results = Object.fromEntries([
  await redisCase("connect-redis+redis", nodeRedis, (k) => nodeRedis.ttl(k)),
  await redisCase("connect-redis+ioredis", ioredis, (k) => ioredis.ttl(k)),
  await memcachedCase(),
]);
await nodeRedis.quit();
ioredis.disconnect();
console.log(JSON.stringify(results));
