//! The node's SQLite database (`<data dir>/jobs.sqlite`), shared by the job store and the spot-check
//! store, each of which owns its tables. One connection behind a mutex, in WAL mode with
//! `synchronous=FULL` (an accepted job survives a power cut); every query runs on tokio's blocking
//! threads through [`Database::run`], never on the async ones.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task did not finish: {0}")]
    Interrupted(String),
}

/// A cloneable handle to the node's database.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
}

impl Database {
    /// Opens (or creates) the database at `path`. Blocks: call it off the async threads.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `work` with the connection, here and now. For setup (schemas) and tests.
    pub fn run_now<T>(&self, work: impl FnOnce(&mut Connection) -> T) -> T {
        work(&mut lock(&self.conn))
    }

    /// Runs `work` with the connection on a blocking thread.
    pub async fn run<T, E>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || work(&mut lock(&conn)))
            .await
            .map_err(|e| E::from(DbError::Interrupted(e.to_string())))?
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-written row (SQLite is transactional), so
    // a poisoned lock is still safe to use.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
