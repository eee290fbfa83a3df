//! The RESP listener's door: the native `SESSION.*` commands and the Redis
//! commands stock session stores send, told apart by name on each request
//! (the parsers are `sessiond_proto::native` and `sessiond_proto::redis`);
//! `AUTH`, `HELLO`, `INFO` and `QUIT` are answered here.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sessiond_core::{not_in_transaction, Command, Reply, SessionId, Touches};
use sessiond_proto::native::{self, Request};
use sessiond_proto::redis;
use sessiond_proto::resp::{
    encode_bulk, encode_error, encode_reply, error_parts, parse_request_spans, with_args, Discard,
    FrameError, Protocol, Request as Frame,
};

use super::{Next, SocketDoor, FLUSH_AT};
use crate::access::auth::Refused;
use crate::conn::link::{Later, Link};
use crate::conn::stream::Stream;
use crate::metrics::Proto;
use crate::shared::Shared;

struct Conn {
    link: Link,
    proto: Protocol,
    /// The rest of a request with an oversized argument, being skipped.
    discard: Option<Discard>,
    /// Between MULTI and EXEC: the requests queued.
    multi: Option<Multi>,
    /// WATCHed sessions and their versions then (None: absent).
    watched: Vec<(SessionId, Option<u64>)>,
    /// Where the arguments of the request being answered are in the read
    /// buffer (kept between requests for its room).
    spans: Vec<(usize, usize)>,
    /// What the request being answered left to do (`answer_in_place`).
    slow: Option<Slow>,
}

/// A Redis transaction being queued.
#[derive(Default)]
struct Multi {
    queued: Vec<redis::RedisRequest>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    aborted: bool,
}

/// What a request that cannot be answered at once leaves to do.
enum Slow {
    /// A native (or unknown) command, parsed.
    Native(Result<Request, native::CommandError>),
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Transaction(redis::Transaction),
    /// A script or function.
    Script(redis::Scripting),
    /// A request of several commands.
    Many(redis::Render, Vec<Command>),
    /// A command that waits for a lock or runs the long way.
    Later(Later, redis::Render),
}

/// Argument ranges a connection keeps room for between requests.
const MAX_KEPT_SPANS: usize = 1024;

/// Most requests one MULTI may queue, and keys one connection may WATCH
/// (each request is bounded by the request limits already).
const MAX_QUEUED: usize = 10_000;

/// Serves one connection to the end.
pub(crate) async fn serve(stream: Stream, shared: Arc<Shared>) {
    let mut conn = Conn {
        link: Link::new(stream, shared, 16 * 1024, crate::door::Door::Resp),
        proto: Protocol::Resp2,
        discard: None,
        multi: None,
        watched: Vec::new(),
        spans: Vec::new(),
        slow: None,
    };
    super::serve(&mut conn).await;
}

impl SocketDoor for Conn {
    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Answers every whole request in the input buffer.
    async fn answer_buffered(&mut self) -> std::io::Result<Next> {
        loop {
            if let Some(d) = &mut self.discard {
                match d.skip(&mut self.link.inbuf) {
                    Ok(false) => return Ok(Next::Continue),
                    Ok(true) => self.discard = None,
                    Err(e) => {
                        encode_error("ERR", &e.to_string(), &mut self.link.out);
                        return Ok(Next::Close);
                    }
                }
            }
            let parsed = parse_request_spans(
                &mut self.link.inbuf,
                &self.link.shared.limits,
                &mut self.spans,
            );
            match parsed {
                Ok(None) => return Ok(Next::Continue),
                Ok(Some(Frame::InPlace { len })) => {
                    // Answered where its bytes are, then consumed: the
                    // arguments are slices of the read buffer, which is
                    // set aside meanwhile (nothing reads into it until
                    // the request is answered or becomes `Slow`, which
                    // holds copies).
                    let mut inbuf = std::mem::take(&mut self.link.inbuf);
                    let spans = std::mem::take(&mut self.spans);
                    if !spans.is_empty() {
                        with_args(&inbuf, &spans, |args| self.answer_in_place(args));
                    }
                    self.spans = spans;
                    if self.spans.capacity() > MAX_KEPT_SPANS {
                        // A request of many arguments does not leave its
                        // room behind for the connection's life.
                        self.spans = Vec::new();
                    }
                    inbuf.advance(len);
                    self.link.inbuf = inbuf;
                }
                Ok(Some(Frame::Inline(words))) if words.is_empty() => {}
                Ok(Some(Frame::Inline(words))) => {
                    let args: Vec<&[u8]> = words.iter().map(|w| &w[..]).collect();
                    self.answer_in_place(&args);
                }
                Err(e @ FrameError::ValueTooLarge(_)) => {
                    // Answered at once; its bytes are skipped as they come.
                    encode_error("LIMIT", &e.to_string(), &mut self.link.out);
                    if let FrameError::ValueTooLarge(d) = e {
                        self.discard = Some(d);
                    }
                    continue;
                }
                Err(e) => {
                    // The stream cannot be trusted past a framing error.
                    encode_error("ERR", &e.to_string(), &mut self.link.out);
                    return Ok(Next::Close);
                }
            };
            self.link.answered += 1;
            // Looked at before it is taken: most requests leave nothing,
            // and taking copies the whole (large) value.
            if self.slow.is_some() {
                if let Some(slow) = self.slow.take() {
                    if let Next::Close = self.answer_slow(slow).await? {
                        return Ok(Next::Close);
                    }
                }
            }
            if self.link.out.len() >= FLUSH_AT {
                self.link.flush().await?;
            }
        }
    }
}

impl Conn {
    /// Answers one request, if it can be without waiting for anything
    /// (nearly every request); else what is left to do, for
    /// `answer_slow`. `args` are slices of the read buffer: what a command
    /// keeps is copied out by its parser.
    fn answer_now(&mut self, args: &[&[u8]]) -> Option<Slow> {
        if !self.link.authenticated() && !opens_session(args[0]) {
            encode_error("NOAUTH", "Authentication required.", &mut self.link.out);
            return None;
        }
        // The name decides the door: Redis, native, or unknown. The two
        // tables share no name; the Redis one (a table look-up) goes
        // first, as stock clients' requests are most of the traffic.
        let known = redis::lookup(args[0]);
        if self.multi.is_some() && known.is_none() && !opens_session(args[0]) {
            // Only Redis commands queue; anything else aborts the
            // transaction, as an unknown command does on Redis.
            self.abort_multi();
            encode_error(
                "ERR",
                "only Redis commands can be queued between MULTI and EXEC",
                &mut self.link.out,
            );
            return None;
        }
        let Some(known) = known else {
            self.link.set_proto(Proto::Native);
            let parsed = match native::lookup(args[0]) {
                Some(spec) => native::parse_command(spec, copied(&args[1..])),
                None => native::parse(copied(args)),
            };
            return Some(Slow::Native(parsed));
        };
        self.link.set_proto(Proto::Redis);
        self.redis_now(known, args)
    }

    /// [`Conn::answer_now`], what it leaves put in `self.slow`: the large
    /// `Slow` moves only when there is one (returned through the read
    /// buffer's closure and the parse loop, it was copied whole for every
    /// request).
    fn answer_in_place(&mut self, args: &[&[u8]]) {
        if let Some(slow) = self.answer_now(args) {
            self.slow = Some(slow);
        }
    }

    /// What `answer_now` left: a native command, or a Redis request that
    /// waits or runs the long way.
    async fn answer_slow(&mut self, slow: Slow) -> std::io::Result<Next> {
        match slow {
            Slow::Native(parsed) => return self.handle_native(parsed).await,
            Slow::Transaction(t) => self.transaction(t).await?,
            Slow::Script(op) => self.script(op).await?,
            Slow::Many(render, commands) => self.run_many(render, commands).await?,
            Slow::Later(later, render) => {
                // A queued lock; KEYS, SCAN, FLUSHDB, which run (and are
                // rendered) off the request workers, like every
                // cross-session command; a cluster's command.
                let (proto, keys) = (self.proto, self.link.shared.redis_keys.clone());
                self.link
                    .run_later(later, move |result, out| {
                        encode_folded(redis::render_one(&render, &keys, result), proto, out);
                    })
                    .await?;
            }
        }
        Ok(Next::Continue)
    }

    /// A native (or unknown) command, parsed.
    async fn handle_native(
        &mut self,
        parsed: Result<Request, native::CommandError>,
    ) -> std::io::Result<Next> {
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                encode_error(e.code, &e.message, &mut self.link.out);
                return Ok(Next::Continue);
            }
        };
        let cmd = match request {
            Request::Engine(cmd) => cmd,
            Request::Quit => {
                self.link.out.put_slice(b"+OK\r\n");
                return Ok(Next::Close);
            }
            Request::Auth { user, password } => {
                match self.link.login(user.as_deref(), &password).await {
                    Ok(_) => self.link.out.put_slice(b"+OK\r\n"),
                    Err(refused) => login_refused(&refused, user.is_none(), &mut self.link.out),
                }
                return Ok(Next::Continue);
            }
            Request::Hello { protover, auth } => {
                if let Some((user, password)) = auth {
                    if let Err(refused) = self.link.login(Some(&user), &password).await {
                        login_refused(&refused, false, &mut self.link.out);
                        return Ok(Next::Continue);
                    }
                } else if !self.link.authenticated() {
                    encode_error(
                        "NOAUTH",
                        "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                        &mut self.link.out,
                    );
                    return Ok(Next::Continue);
                }
                match protover {
                    Some(3) => self.proto = Protocol::Resp3,
                    Some(_) => self.proto = Protocol::Resp2,
                    None => {}
                }
                let reply = self.hello();
                encode_reply(&reply, self.proto, &mut self.link.out);
                return Ok(Next::Continue);
            }
            Request::Reply(reply) => {
                encode_reply(&reply, self.proto, &mut self.link.out);
                return Ok(Next::Continue);
            }
            Request::Reload => {
                let reply = match self.link.allows(sessiond_core::Access::Admin) {
                    Ok(()) => reload(self.link.shared.scripts.clone()).await,
                    Err(e) => Err(e),
                };
                encode_result(reply, self.proto, &mut self.link.out);
                return Ok(Next::Continue);
            }
            Request::Info { sections } => {
                // The engine's own section, then the server's around it.
                match self.link.run(Command::ServerInfo).await? {
                    Ok(Reply::Info(engine)) => {
                        let reply = Reply::Info(crate::doors::info::sections(
                            &self.link.shared,
                            self.link.tenant(),
                            engine,
                            &sections,
                        ));
                        encode_reply(&reply, self.proto, &mut self.link.out);
                    }
                    Ok(other) => encode_reply(&other, self.proto, &mut self.link.out),
                    Err(e) => encode_error(e.code(), &e.to_string(), &mut self.link.out),
                }
                return Ok(Next::Continue);
            }
        };
        let proto = self.proto;
        self.link
            .run_into(cmd, move |result, out| encode_result(result, proto, out))
            .await?;
        Ok(Next::Continue)
    }

    /// A Redis-door request: a transaction command, a command queued
    /// between MULTI and EXEC, or one run now — answered here unless it
    /// waits or runs the long way.
    fn redis_now(&mut self, known: redis::Known, args: &[&[u8]]) -> Option<Slow> {
        if let Some(t) = known.transaction(args, &self.link.shared.redis_keys) {
            return match t {
                Ok(t) => Some(Slow::Transaction(t)),
                Err(e) => {
                    self.abort_multi();
                    encode_error(e.code, &e.message, &mut self.link.out);
                    None
                }
            };
        }
        // The name, for a refusal to queue; copied only inside MULTI (a
        // clone of the request's bytes would allocate on every command).
        let name = match &self.multi {
            Some(_) => args
                .first()
                .map(|n| String::from_utf8_lossy(n).to_uppercase()),
            None => None,
        };
        let request = match known.parse(args, &self.link.shared.redis_keys, self.link.client().id())
        {
            Ok(r) => r,
            Err(e) => {
                self.abort_multi();
                encode_error(e.code, &e.message, &mut self.link.out);
                return None;
            }
        };
        if let redis::Render::Script(op) = request.render {
            if let Some(m) = &mut self.multi {
                m.aborted = true;
                let e = not_in_transaction(&name.unwrap_or_default());
                encode_error(e.code(), &e.to_string(), &mut self.link.out);
                return None;
            }
            return Some(Slow::Script(op));
        }
        // All or nothing: the reply folds every command's result, so one
        // refusal refuses the request.
        if let Some(e) = request
            .commands
            .iter()
            .find_map(|c| self.link.permit(c).err())
        {
            self.abort_multi();
            self.link.count_error(&e);
            encode_error(e.code(), &e.to_string(), &mut self.link.out);
            return None;
        }
        if let Some(m) = &mut self.multi {
            let unsure = request
                .commands
                .iter()
                .find(|c| c.touches() == Touches::Unsure);
            if unsure.is_some() {
                m.aborted = true;
                let e = not_in_transaction(&name.unwrap_or_default());
                encode_error(e.code(), &e.to_string(), &mut self.link.out);
            } else if m.queued.len() >= MAX_QUEUED {
                m.aborted = true;
                encode_error(
                    "LIMIT",
                    &format!("a transaction holds at most {MAX_QUEUED} commands"),
                    &mut self.link.out,
                );
            } else {
                m.queued.push(request);
                self.link.out.put_slice(b"+QUEUED\r\n");
            }
            return None;
        }
        // Run now: one command the engine answers at once is answered
        // without a future of its own (`Link::run_now`).
        let redis::RedisRequest { commands, render } = request;
        let mut cmd = match commands.single() {
            Ok(cmd) => cmd,
            Err(commands) => return Some(Slow::Many(render, commands)),
        };
        if matches!(cmd, Command::GetData { .. })
            && matches!(render, redis::Render::NilIfMissing | redis::Render::Plain)
        {
            // A GET: its value written from the session (`Link::value_now`),
            // as the bulk the general path renders.
            let lent = self.link.value_now(cmd, |lent, out| match lent {
                Ok(value) => {
                    encode_bulk(value.data, out);
                    None
                }
                Err(e) => Some(e),
            });
            match lent {
                Ok(None) => return None,
                Ok(Some(e)) => {
                    let link = &mut self.link;
                    let folded = redis::render_one(&render, &link.shared.redis_keys, Err(e));
                    encode_folded(folded, self.proto, &mut link.out);
                    return None;
                }
                Err(other) => cmd = other,
            }
        }
        match self.link.run_now(cmd) {
            Ok(result) => {
                let link = &mut self.link;
                let folded = redis::render_one(&render, &link.shared.redis_keys, result);
                encode_folded(folded, self.proto, &mut link.out);
                None
            }
            Err(later) => Some(Slow::Later(later, render)),
        }
    }

    /// A request of several commands (MGET, MSET, DEL a b, GETEX): one
    /// step, as in Redis.
    async fn run_many(
        &mut self,
        render: redis::Render,
        commands: Vec<Command>,
    ) -> std::io::Result<()> {
        let (proto, keys) = (self.proto, self.link.shared.redis_keys.clone());
        let exec = Command::Exec {
            watched: Vec::new(),
            commands,
        };
        self.link
            .run_into(exec, move |result, out| match result {
                Ok(Reply::Exec(Some(results))) => {
                    encode_folded(redis::render(&render, &keys, results), proto, out);
                }
                Ok(other) => unexpected_shape(&other, out),
                Err(e) => encode_error(e.code(), &e.to_string(), out),
            })
            .await
    }

    /// `EVAL`, `EVALSHA`, `FCALL` and `SCRIPT …`: a script or function
    /// runs as one [`Command::Call`] on the sessions its keys name; the
    /// tenant's cache keeps scripts for `EVALSHA`.
    async fn script(&mut self, op: redis::Scripting) -> std::io::Result<()> {
        use redis::Scripting as S;
        use sessiond_core::script::Func;
        use sessiond_core::Access;
        let scripts = self.link.shared.scripts.clone();
        let eval = |sha, source, keys: &[Bytes]| Func::Eval {
            sha,
            source,
            keys: keys.to_vec(),
        };
        let (func, keys, args) = match op {
            S::Eval { source, keys, args } => {
                let sha = Bytes::from(crate::scripts::sha1_hex(&source));
                (eval(sha, source, &keys), keys, args)
            }
            S::EvalSha { sha, keys, args } => {
                let Some(source) = self.link.tenant().script_cache.get(&sha) else {
                    encode_error(
                        "NOSCRIPT",
                        "No matching script. Please use EVAL.",
                        &mut self.link.out,
                    );
                    return Ok(());
                };
                let sha = Bytes::from(sha.to_ascii_lowercase());
                (eval(sha, source, &keys), keys, args)
            }
            S::FCall { name, keys, args } => (
                Func::FCall {
                    name,
                    keys: keys.clone(),
                },
                keys,
                args,
            ),
            S::Load(source) => {
                let reply = match self.link.allows(Access::Write) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let sha = Bytes::from(crate::scripts::sha1_hex(&source));
                        let (s, k) = (sha.clone(), source.clone());
                        match tokio::task::spawn_blocking(move || scripts.check_compiles(&s, &k))
                            .await
                        {
                            Ok(Ok(())) => {
                                self.link.tenant().script_cache.insert(sha.clone(), source);
                                Ok(Reply::Bulk(sha))
                            }
                            Ok(Err(e)) => Err(e),
                            Err(e) => Err(sessiond_core::Error::Raised(format!(
                                "ERR the compile failed: {e}"
                            ))),
                        }
                    }
                };
                self.encode_script_reply(reply);
                return Ok(());
            }
            S::Exists(shas) => {
                let reply = self.link.allows(Access::Read).map(|()| {
                    let cache = &self.link.tenant().script_cache;
                    Reply::Array(
                        shas.iter()
                            .map(|sha| {
                                let known = sha.eq_ignore_ascii_case(redis::UNLOCK_SHA)
                                    || cache.get(sha).is_some();
                                Reply::Int(i64::from(known))
                            })
                            .collect(),
                    )
                });
                self.encode_script_reply(reply);
                return Ok(());
            }
            S::Flush => {
                let reply = self.link.allows(Access::Write).map(|()| {
                    self.link.tenant().script_cache.clear();
                    Reply::Ok
                });
                self.encode_script_reply(reply);
                return Ok(());
            }
        };
        let cmd = redis::script_call(func.clone(), &keys, args, &self.link.shared.redis_keys);
        if let Err(e) = self.link.permit(&cmd) {
            self.link.count_error(&e);
            encode_error(e.code(), &e.to_string(), &mut self.link.out);
            return Ok(());
        }
        // EVAL keeps the script for EVALSHA, as Redis does.
        if let Func::Eval { sha, source, .. } = func {
            self.link.tenant().script_cache.insert(sha, source);
        }
        let proto = self.proto;
        self.link
            .run_into(cmd, move |result, out| match result {
                Ok(reply) => encode_reply(&reply, proto, out),
                Err(e) => {
                    let (code, message) = error_parts(&e);
                    encode_error(code, &message, out);
                }
            })
            .await
    }

    fn encode_script_reply(&mut self, reply: Result<Reply, sessiond_core::Error>) {
        match reply {
            Ok(r) => encode_reply(&r, self.proto, &mut self.link.out),
            Err(e) => {
                self.link.count_error(&e);
                let (code, message) = error_parts(&e);
                encode_error(code, &message, &mut self.link.out);
            }
        }
    }

    /// Marks the transaction being queued (if any) as failed: its EXEC
    /// will run nothing.
    fn abort_multi(&mut self) {
        if let Some(m) = &mut self.multi {
            m.aborted = true;
        }
    }

    /// A session's version now (None: absent), for WATCH.
    async fn version_of(&mut self, id: SessionId) -> std::io::Result<Option<u64>> {
        let item = Command::Item {
            id,
            timeout_ms: None,
        };
        Ok(match self.link.run(item).await? {
            Ok(Reply::Item { version, .. }) => Some(version),
            _ => None,
        })
    }

    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis's replies.
    async fn transaction(&mut self, t: redis::Transaction) -> std::io::Result<()> {
        use redis::Transaction as T;
        let out = &mut self.link.out;
        match t {
            T::Multi if self.multi.is_some() => {
                encode_error("ERR", "MULTI calls can not be nested", out);
            }
            T::Multi => {
                self.multi = Some(Multi::default());
                out.put_slice(b"+OK\r\n");
            }
            T::Discard => match self.multi.take() {
                None => encode_error("ERR", "DISCARD without MULTI", out),
                Some(_) => {
                    self.watched.clear();
                    out.put_slice(b"+OK\r\n");
                }
            },
            T::Unwatch => {
                self.watched.clear();
                out.put_slice(b"+OK\r\n");
            }
            T::Watch(_) if self.multi.is_some() => {
                self.abort_multi();
                encode_error(
                    "ERR",
                    "WATCH inside MULTI is not allowed",
                    &mut self.link.out,
                );
            }
            T::Watch(ids) if self.watched.len() + ids.len() > MAX_QUEUED => {
                encode_error(
                    "LIMIT",
                    &format!("at most {MAX_QUEUED} keys may be watched"),
                    out,
                );
            }
            T::Watch(ids) => {
                for id in ids {
                    let version = self.version_of(id.clone()).await?;
                    self.watched.push((id, version));
                }
                self.link.out.put_slice(b"+OK\r\n");
            }
            T::Exec => {
                let Some(multi) = self.multi.take() else {
                    encode_error("ERR", "EXEC without MULTI", out);
                    return Ok(());
                };
                let watched = std::mem::take(&mut self.watched);
                if multi.aborted {
                    encode_error(
                        "EXECABORT",
                        "Transaction discarded because of previous errors.",
                        &mut self.link.out,
                    );
                    return Ok(());
                }
                self.exec(watched, multi.queued).await?;
            }
        }
        Ok(())
    }

    /// Runs a transaction's queued requests as one engine step and writes
    /// Redis's reply: nil when a watched key changed, else one array of
    /// the requests' replies, refusals among them.
    async fn exec(
        &mut self,
        watched: Vec<(SessionId, Option<u64>)>,
        queued: Vec<redis::RedisRequest>,
    ) -> std::io::Result<()> {
        let mut renders = Vec::with_capacity(queued.len());
        let mut commands = Vec::new();
        for request in queued {
            renders.push((request.render, request.commands.len()));
            commands.extend(request.commands);
        }
        let (proto, keys) = (self.proto, self.link.shared.redis_keys.clone());
        let exec = Command::Exec { watched, commands };
        self.link
            .run_into(exec, move |result, out| match result {
                Ok(Reply::Exec(Some(results))) => {
                    let mut results = results.into_iter();
                    out.put_slice(format!("*{}\r\n", renders.len()).as_bytes());
                    for (render, n) in renders {
                        let mine: Vec<_> = results.by_ref().take(n).collect();
                        match redis::render(&render, &keys, mine) {
                            Ok(reply) => encode_reply(&reply, proto, out),
                            Err((code, message)) => encode_error(code, &message, out),
                        }
                    }
                }
                // A watched session changed: nothing ran.
                Ok(Reply::Exec(None)) => encode_reply(&Reply::Nil, proto, out),
                Ok(other) => unexpected_shape(&other, out),
                Err(e) => encode_error(e.code(), &e.to_string(), out),
            })
            .await
    }

    fn hello(&self) -> Reply {
        let proto = match self.proto {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        };
        let field = |k: &'static str, v: Reply| (Reply::text(k), v);
        Reply::Map(vec![
            field("server", Reply::text("sessiond")),
            field("version", Reply::text(env!("CARGO_PKG_VERSION"))),
            field("proto", Reply::Int(proto)),
            field(
                "id",
                Reply::Int(i64::try_from(self.link.client().id()).unwrap_or(i64::MAX)),
            ),
            field("mode", Reply::text("standalone")),
            field("role", Reply::text("master")),
            field("modules", Reply::Array(Vec::new())),
        ])
    }
}

/// An engine answer of a shape the request cannot have (a transaction
/// answers `Reply::Exec`): a loud error, never a silent nil.
fn unexpected_shape(reply: &Reply, out: &mut BytesMut) {
    encode_error(
        "ERR",
        &format!("internal error: a transaction answered {reply:?}"),
        out,
    );
}

/// `SESSION.RELOAD` (an admin's, checked first): reads the plugins
/// directory again, as SIGHUP does; answered with the functions now loaded
/// and the files that failed, each with why.
async fn reload(scripts: Arc<crate::scripts::Scripts>) -> Result<Reply, sessiond_core::Error> {
    if !scripts.has_dir() {
        return Err(sessiond_core::Error::InvalidArgument(
            "no plugins directory is configured (plugins_dir): nothing to reload".into(),
        ));
    }
    let done = tokio::task::spawn_blocking(move || scripts.reload())
        .await
        .map_err(|e| sessiond_core::Error::InvalidArgument(format!("the reload failed: {e}")))?;
    let text = |s: &str| Reply::Bulk(bytes::Bytes::from(s.to_string()));
    Ok(Reply::Map(vec![
        (
            Reply::text("functions"),
            Reply::Array(done.functions.iter().map(|f| text(f)).collect()),
        ),
        (
            Reply::text("failed"),
            Reply::Array(
                done.failed
                    .iter()
                    .map(|(path, why)| {
                        Reply::Array(vec![text(&path.display().to_string()), text(why)])
                    })
                    .collect(),
            ),
        ),
    ]))
}

/// A command's reply or refusal, in RESP.
fn encode_result(result: Result<Reply, sessiond_core::Error>, proto: Protocol, out: &mut BytesMut) {
    match result {
        Ok(reply) => encode_reply(&reply, proto, out),
        Err(e) => encode_error(e.code(), &e.to_string(), out),
    }
}

/// The arguments as the native parsers take them (they keep some).
fn copied(args: &[&[u8]]) -> Vec<Bytes> {
    args.iter().map(|a| Bytes::copy_from_slice(a)).collect()
}

/// Whether a client that has not logged in may send this command: the
/// ones that log in, and QUIT.
fn opens_session(name: &[u8]) -> bool {
    [&b"AUTH"[..], b"HELLO", b"QUIT"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// A refused login, in Redis's words where Redis has them.
fn login_refused(refused: &Refused, bare_auth: bool, out: &mut bytes::BytesMut) {
    match refused {
        Refused::Wrong => encode_error(
            "WRONGPASS",
            "invalid username-password pair or user is disabled.",
            out,
        ),
        Refused::NoUsers if bare_auth => encode_error(
            "ERR",
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            out,
        ),
        other => encode_error("ERR", &other.message(), out),
    }
}

/// A Redis request's folded result, encoded.
fn encode_folded(
    folded: Result<Reply, (&'static str, String)>,
    proto: Protocol,
    out: &mut BytesMut,
) {
    match folded {
        Ok(reply) => encode_reply(&reply, proto, out),
        Err((code, message)) => encode_error(code, &message, out),
    }
}
