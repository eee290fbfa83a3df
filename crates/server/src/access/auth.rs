//! Users, their passwords and roles, and the brake on failed logins.
//!
//! Passwords are stored as Argon2id hashes (`sessiond passwd` makes one).
//! Checking one costs tens of milliseconds of CPU by design, and PHP opens a
//! connection (and logs in) per page, so a user's last good password is
//! remembered as a keyed BLAKE2 digest (the key is random per process):
//! the next login with it costs a hash, not an Argon2 run. Argon2 runs off
//! the async threads, a few at a time, so wrong passwords cannot stall the
//! server; and an address that fails too often is refused for a while
//! without any check at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use blake2::{Blake2b256, Digest};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sessiond_core::{Access, Clock};
use tokio::sync::Semaphore;

/// What a user may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including commands on every session at once (FLUSHALL).
    Admin,
    /// Read and write sessions, take any lock.
    #[default]
    Readwrite,
    /// Read sessions and take shared locks only.
    Readonly,
}

impl Role {
    /// Whether the role may run commands needing `access`.
    pub fn permits(self, access: Access) -> bool {
        let top = match self {
            Role::Admin => Access::Admin,
            Role::Readwrite => Access::Write,
            Role::Readonly => Access::Read,
        };
        access <= top
    }

    /// Ok if the role may run commands needing `access`; otherwise the
    /// refusal every door answers with.
    pub(crate) fn check(self, access: Access) -> Result<(), sessiond_core::Error> {
        if self.permits(access) {
            Ok(())
        } else {
            Err(sessiond_core::Error::NotPermitted {
                role: self.name(),
                what: access.describe(),
            })
        }
    }

    /// The role's name, as in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Readwrite => "readwrite",
            Role::Readonly => "readonly",
        }
    }
}

/// The tenant whose sessions live in the data directory itself; a server
/// without users serves only this one.
pub const DEFAULT_TENANT: &str = "default";

/// The user `AUTH <password>` (no user name) logs in as, as in Redis.
pub const DEFAULT_USER: &str = "default";

/// One `[[users]]` entry of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login name.
    pub name: String,
    /// An Argon2 hash in PHC form (`$argon2id$…`), from `sessiond passwd`.
    pub password_hash: String,
    /// The tenant (namespace of sessions) the user works in.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// What the user may do there.
    #[serde(default)]
    pub role: Role,
}

fn default_tenant() -> String {
    DEFAULT_TENANT.into()
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// An Argon2id hash of `password` with a fresh random salt, in PHC form.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password_with_salt(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks that `hash` is an Argon2 hash sessiond can verify against.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = argon2::password_hash::phc::PasswordHash::new(hash)
        .map_err(|e| format!("not a PHC hash string ({e})"))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" if parsed.hash.is_some() => Ok(()),
        "argon2id" | "argon2i" | "argon2d" => Err("the hash has no output part".into()),
        other => Err(format!(
            "algorithm '{other}' is not supported; make the hash with `sessiond passwd`"
        )),
    }
}

/// Whether `name` can be a user name: 1 to 64 of letters, digits and
/// `_ . @ -` (no spaces: memcached's text login splits on one).
pub fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

/// Whether `name` can be a tenant name: 1 to 64 of lower-case letters,
/// digits, `_` and `-` (it names a directory).
pub fn valid_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Who a connection is once logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) tenant: String,
    pub(crate) role: Role,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server has no users: there is nothing to log in as.
    NoUsers,
    /// This address failed too often; try again after this many seconds.
    Throttled(u64),
    /// Unknown user or wrong password (the two are not told apart).
    Wrong,
}

impl Refused {
    /// The message a client is given.
    pub(crate) fn message(&self) -> String {
        match self {
            Refused::NoUsers => {
                "this server has no users configured, so there is nothing to log in as".into()
            }
            Refused::Throttled(s) => {
                format!("too many failed logins from this address; try again in {s} s")
            }
            Refused::Wrong => "invalid username-password pair".into(),
        }
    }
}

struct User {
    hash: String,
    tenant: String,
    role: Role,
    /// Keyed digest of the last password that checked out.
    remembered: Mutex<Option<[u8; 32]>>,
}

/// The configured users and the failed-login brake.
pub(crate) struct Auth {
    users: HashMap<String, Arc<User>>,
    /// Key of the remembered-password digests.
    key: [u8; 32],
    /// Argon2 checks running at once.
    checks: Semaphore,
    throttle: Throttle,
    /// Logins refused for a wrong user or password.
    failed: AtomicU64,
    /// Argon2 checks run (the remembered-password path runs none).
    argon2_runs: AtomicU64,
}

/// Argon2 checks allowed at once, so wrong passwords cannot take every core.
const PARALLEL_CHECKS: usize = 2;

impl Auth {
    /// `users` (validated), with at most `max_failures` failed logins per
    /// address per `window_ms` on `clock`.
    pub(crate) fn new(
        users: &[UserConfig],
        max_failures: u32,
        window_ms: u64,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut key) {
            // Only the remembered-password cache depends on it; without a
            // random key every login runs Argon2.
            tracing::warn!(error = %e, "no random key for the login cache; it stays off");
        }
        if !users.is_empty() {
            // Made now, at start-up, so that the first login with an
            // unknown name costs no more than any other.
            decoy_hash();
        }
        Self {
            users: users
                .iter()
                .map(|u| {
                    (
                        u.name.clone(),
                        Arc::new(User {
                            hash: u.password_hash.clone(),
                            tenant: u.tenant.clone(),
                            role: u.role,
                            remembered: Mutex::new(None),
                        }),
                    )
                })
                .collect(),
            key,
            checks: Semaphore::new(PARALLEL_CHECKS),
            throttle: Throttle::new(max_failures, window_ms, clock),
            failed: AtomicU64::new(0),
            argon2_runs: AtomicU64::new(0),
        }
    }

    /// Whether connections must log in.
    pub(crate) fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Logs `user` (None: the `default` user) in with `password`, from
    /// `peer`.
    pub(crate) async fn login(
        &self,
        peer: IpAddr,
        user: Option<&[u8]>,
        password: &[u8],
    ) -> Result<Login, Refused> {
        if !self.required() {
            return Err(Refused::NoUsers);
        }
        self.throttle.check(peer).map_err(Refused::Throttled)?;
        let name = user.unwrap_or(DEFAULT_USER.as_bytes());
        let found = std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.users.get(n).map(|u| (n, u.clone())));
        let digest = self.digest(name, password);
        if let Some((n, u)) = &found {
            if self.key != [0; 32] && *u.remembered.lock() == Some(digest) {
                return Ok(login(n, u));
            }
        }
        // An unknown user costs as much as a wrong password, so timing does
        // not tell which names exist.
        let hash = match &found {
            Some((_, u)) => u.hash.clone(),
            None => decoy_hash().to_string(),
        };
        let ok = self.verify(hash, password).await && found.is_some();
        match found {
            Some((n, u)) if ok => {
                *u.remembered.lock() = Some(digest);
                Ok(login(n, &u))
            }
            _ => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.throttle.failed(peer);
                Err(Refused::Wrong)
            }
        }
    }

    async fn verify(&self, hash: String, password: &[u8]) -> bool {
        let Ok(_turn) = self.checks.acquire().await else {
            return false;
        };
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let password = password.to_vec();
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(&password, hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    fn digest(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        Blake2b256::new()
            .chain_update(self.key)
            .chain_update((user.len() as u64).to_le_bytes())
            .chain_update(user)
            .chain_update(password)
            .finalize()
            .into()
    }

    /// Logins refused so far: (wrong user or password, refused unchecked
    /// because their address failed too often).
    pub(crate) fn refusals(&self) -> (u64, u64) {
        (
            self.failed.load(Ordering::Relaxed),
            self.throttle.refused.load(Ordering::Relaxed),
        )
    }
}

fn login(name: &str, u: &User) -> Login {
    Login {
        user: name.to_string(),
        tenant: u.tenant.clone(),
        role: u.role,
    }
}

/// A hash no password is known for, checked against for unknown users.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 32];
        let _ = getrandom::fill(&mut pw);
        hash_password(&pw).unwrap_or_default()
    })
}

/// Addresses tracked at most; past this, stale entries are dropped and a
/// new address goes untracked until there is room.
const MAX_TRACKED: usize = 65_536;

/// Failed logins per address in fixed windows: after `max_failures` in
/// `window_ms`, logins from it are refused unchecked until the window ends.
struct Throttle {
    max_failures: u32,
    window_ms: u64,
    clock: Arc<dyn Clock>,
    seen: Mutex<HashMap<IpAddr, Tally>>,
    refused: AtomicU64,
}

#[derive(Clone, Copy)]
struct Tally {
    failures: u32,
    since_ms: u64,
}

impl Throttle {
    fn new(max_failures: u32, window_ms: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            max_failures,
            window_ms,
            clock,
            seen: Mutex::new(HashMap::new()),
            refused: Default::default(),
        }
    }

    /// Ok, or the seconds until `peer` may try again.
    fn check(&self, peer: IpAddr) -> Result<(), u64> {
        let peer = crate::access::admission::canonical(peer);
        let now = self.clock.now_ms();
        let mut seen = self.seen.lock();
        let Some(t) = seen.get(&peer).copied() else {
            return Ok(());
        };
        let ends = t.since_ms.saturating_add(self.window_ms);
        if now >= ends {
            seen.remove(&peer);
            return Ok(());
        }
        if t.failures >= self.max_failures {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err((ends - now).div_ceil(1000));
        }
        Ok(())
    }

    fn failed(&self, peer: IpAddr) {
        let peer = crate::access::admission::canonical(peer);
        let now = self.clock.now_ms();
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&peer) {
            let window = self.window_ms;
            seen.retain(|_, t| now < t.since_ms.saturating_add(window));
            if seen.len() >= MAX_TRACKED {
                return;
            }
        }
        let t = seen.entry(peer).or_insert(Tally {
            failures: 0,
            since_ms: now,
        });
        if now >= t.since_ms.saturating_add(self.window_ms) {
            *t = Tally {
                failures: 0,
                since_ms: now,
            };
        }
        t.failures = t.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiond_core::ManualClock;

    fn user(name: &str, password: &str, tenant: &str, role: Role) -> UserConfig {
        UserConfig {
            name: name.into(),
            password_hash: hash_password(password.as_bytes()).unwrap(),
            tenant: tenant.into(),
            role,
        }
    }

    #[test]
    fn roles_permit_their_level_and_below() {
        use Access::*;
        assert!(Role::Admin.permits(Admin) && Role::Admin.permits(Write));
        assert!(Role::Readwrite.permits(Write) && !Role::Readwrite.permits(Admin));
        assert!(Role::Readonly.permits(Read) && !Role::Readonly.permits(Write));
    }

    #[test]
    fn hashes_are_salted_argon2id_and_checked() {
        let a = hash_password(b"secret").unwrap();
        let b = hash_password(b"secret").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        check_hash(&a).unwrap();
        assert!(check_hash("$2y$10$abcdefghijklmnopqrstuv").is_err());
        assert!(check_hash("plaintext").is_err());
        assert!(valid_user_name("shop-1@eu") && !valid_user_name("a b") && !valid_user_name(""));
        assert!(
            valid_tenant_name("shop_1") && !valid_tenant_name("Shop") && !valid_tenant_name("../x")
        );
    }

    #[tokio::test]
    async fn logins_check_the_password_and_remember_it() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let auth = Auth::new(
            &[
                user("shop", "pw1", "shop", Role::Readwrite),
                user("default", "pw0", "default", Role::Admin),
            ],
            3,
            60_000,
            clock,
        );
        let ip: IpAddr = [10, 0, 0, 1].into();
        let ok = auth.login(ip, Some(b"shop"), b"pw1").await.unwrap();
        assert_eq!((ok.tenant.as_str(), ok.role), ("shop", Role::Readwrite));
        assert_eq!(auth.argon2_runs.load(Ordering::Relaxed), 1);
        // Remembered: a second login does not run Argon2.
        assert_eq!(auth.login(ip, Some(b"shop"), b"pw1").await.unwrap(), ok);
        assert_eq!(auth.argon2_runs.load(Ordering::Relaxed), 1);
        assert_eq!(
            auth.login(ip, None, b"pw0").await.unwrap().role,
            Role::Admin
        );
        assert_eq!(
            auth.login(ip, Some(b"shop"), b"pw0").await,
            Err(Refused::Wrong)
        );
        assert_eq!(
            auth.login(ip, Some(b"nobody"), b"pw1").await,
            Err(Refused::Wrong)
        );
        // The remembered digest is bound to the user name.
        assert_eq!(auth.login(ip, None, b"pw1").await, Err(Refused::Wrong));
    }

    #[tokio::test]
    async fn failed_logins_are_braked_per_address_until_the_window_ends() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let auth = Auth::new(
            &[user("u", "right", "t", Role::Readonly)],
            2,
            10_000,
            clock.clone(),
        );
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(
                auth.login(a, Some(b"u"), b"wrong").await,
                Err(Refused::Wrong)
            );
        }
        // Even the right password is refused now, without a check.
        assert_eq!(
            auth.login(a, Some(b"u"), b"right").await,
            Err(Refused::Throttled(10))
        );
        assert_eq!(auth.refusals(), (2, 1));
        // Another address is not affected.
        assert!(auth.login(b, Some(b"u"), b"right").await.is_ok());
        clock.advance(9_001);
        assert_eq!(
            auth.login(a, Some(b"u"), b"right").await,
            Err(Refused::Throttled(1))
        );
        clock.advance(1_000);
        assert!(auth.login(a, Some(b"u"), b"right").await.is_ok());
        // A mapped IPv6 address counts as its IPv4 one.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        for _ in 0..2 {
            let _ = auth.login(mapped, Some(b"u"), b"wrong").await;
        }
        assert!(matches!(
            auth.login(a, Some(b"u"), b"right").await,
            Err(Refused::Throttled(_))
        ));
    }

    #[tokio::test]
    async fn without_users_there_is_no_login() {
        let auth = Auth::new(&[], 3, 1000, Arc::new(ManualClock::new(0)));
        assert!(!auth.required());
        assert_eq!(
            auth.login([127, 0, 0, 1].into(), None, b"x").await,
            Err(Refused::NoUsers)
        );
    }
}
