//! One test story, two stores: SQLite always, Postgres when `GATEHOUSE_TEST_POSTGRES` names a
//! server. Each Postgres test gets a database of its own, dropped when the test ends.

use std::io::Write;
use std::sync::Once;

use sqlx::{Connection, Executor, PgConnection};

/// The server the Postgres runs use, e.g. `postgres://postgres@127.0.0.1:5432`.
pub const POSTGRES_ENV: &str = "GATEHOUSE_TEST_POSTGRES";

/// The store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Defines, next to the async test body `$name(backend: Backend)`, the tests
/// `$name::sqlite` and `$name::postgres`, each running that body on its store.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::support::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if crate::support::postgres_enabled() {
                    super::$name(crate::support::Backend::Postgres).await
                }
            }
        }
    };
}
pub(crate) use on_both_backends;

/// Whether the Postgres runs happen. Without a server: a failure under CI (the suite must not
/// silently shrink there), otherwise one notice on standard error and `false`.
pub fn postgres_enabled() -> bool {
    if std::env::var_os(POSTGRES_ENV).is_some_and(|value| !value.is_empty()) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|value| value.is_empty()),
        "{POSTGRES_ENV} is not set, and CI must run the Postgres suite: \
         run scripts/test.sh (it starts Postgres) or set {POSTGRES_ENV}=postgres://…"
    );
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "Postgres suite not run: set {POSTGRES_ENV}"
        );
    });
    false
}

/// `server` (any path or query dropped, except the query string) pointed at `database`.
fn database_url(server: &str, database: &str) -> String {
    let (scheme, rest) = server
        .split_once("://")
        .unwrap_or_else(|| panic!("{POSTGRES_ENV} must be a postgres:// URL"));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{scheme}://{authority}/{database}{query}")
}

async fn maintenance(server: &str) -> PgConnection {
    PgConnection::connect(&database_url(server, "postgres"))
        .await
        .unwrap_or_else(|error| {
            panic!("cannot reach the Postgres server named by {POSTGRES_ENV}: {error}")
        })
}

/// A database of its own for one test, created on the server named by [`POSTGRES_ENV`] and
/// dropped (with any connection still open to it) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    server: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let server =
            std::env::var(POSTGRES_ENV).unwrap_or_else(|_| panic!("{POSTGRES_ENV} is not set"));
        let simple = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("gh_{}", &simple[..16]);
        let mut admin = maintenance(&server).await;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let _ = admin.close().await;
        Self {
            url: database_url(&server, &name),
            server,
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let server = self.server.clone();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = maintenance(&server).await;
                let _ = admin.execute(drop.as_str()).await;
                let _ = admin.close().await;
            });
        });
        let _ = done.join();
    }
}
