//! The cluster tests' databases, whichever the backend: a test written
//! once over [`Db`] runs on PostgreSQL and on MariaDB ([`on_each_db!`]).

use sessiond_server::Storage;

use super::mysql::MariaDb;
use super::postgres::Postgres;

/// Which database a cluster test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
}

/// A private database server, shared by the test process or a test's own.
pub enum Db<'a> {
    Pg(&'a Postgres),
    My(&'a MariaDb),
}

/// A database server a test started for itself (it stops or crashes it).
pub enum OwnedDb {
    Pg(Postgres),
    My(MariaDb),
}

impl Kind {
    /// The test process's server of this kind (None: not installed, the
    /// test is skipped — a failure under CI).
    pub fn shared(self) -> Option<Db<'static>> {
        match self {
            Kind::Postgres => super::postgres::shared().map(Db::Pg),
            Kind::MySql => super::mysql::shared().map(Db::My),
        }
    }

    /// A server of this kind of the test's own.
    pub fn start(self) -> Option<OwnedDb> {
        match self {
            Kind::Postgres => Postgres::start().map(OwnedDb::Pg),
            Kind::MySql => MariaDb::start().map(OwnedDb::My),
        }
    }

    pub fn storage(self) -> Storage {
        match self {
            Kind::Postgres => Storage::Postgres,
            Kind::MySql => Storage::MySql,
        }
    }

    /// The `storage` name in a configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::MySql => "mysql",
        }
    }

    /// `pg` on PostgreSQL, `my` on MySQL.
    pub fn pick<T>(self, pg: T, my: T) -> T {
        match self {
            Kind::Postgres => pg,
            Kind::MySql => my,
        }
    }
}

impl OwnedDb {
    pub fn db(&self) -> Db<'_> {
        match self {
            OwnedDb::Pg(p) => Db::Pg(p),
            OwnedDb::My(m) => Db::My(m),
        }
    }
}

/// The database name at the end of a URL.
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or("postgres")
}

impl Db<'_> {
    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        match self {
            Db::Pg(p) => p.database(),
            Db::My(m) => m.database(),
        }
    }

    /// Runs SQL in the database of `url` as the superuser; what it
    /// printed (one row a line; PostgreSQL's columns split by `|`,
    /// MariaDB's by a tab).
    pub fn sql(&self, url: &str, sql: &str) -> String {
        match self {
            Db::Pg(p) => p.sql(db_name(url), sql),
            Db::My(m) => m.sql(&format!("USE {}; {sql}", db_name(url))),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        match self {
            Db::Pg(p) => p.port,
            Db::My(m) => m.port,
        }
    }

    /// Stops it at once, as a crash would.
    pub fn crash(&self) {
        match self {
            Db::Pg(p) => p.stop(),
            Db::My(m) => m.kill(),
        }
    }

    /// Starts it again after [`Db::crash`].
    pub fn start_again(&self) {
        match self {
            Db::Pg(p) => p.start_again(),
            Db::My(m) => m.start_again(),
        }
    }
}

/// Writes a cluster test once, as `async fn name(kind: Kind)`, and runs it
/// on each database: `name::on_postgres` and `name::on_mysql`.
#[macro_export]
macro_rules! on_each_db {
    ($(#[$attr:meta])* async fn $name:ident($kind:ident: Kind) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($kind: $crate::common::db::Kind) $body

            $(#[$attr])*
            async fn on_postgres() {
                run($crate::common::db::Kind::Postgres).await
            }

            $(#[$attr])*
            async fn on_mysql() {
                run($crate::common::db::Kind::MySql).await
            }
        }
    };
}
