//! The SQLite job store in the node's data dir: one row per request digest, written at every state
//! change so that a restart resumes each job where it stopped. The same database keeps the spot
//! checks of tokens (`spot_checks`).

mod spot_checks;

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::state::JobState;

/// One job as stored. `id` is the request digest (0x-hex), which is also the token id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub state: JobState,
    /// The signed request exactly as the creator submitted it (JSON).
    #[serde(skip)]
    pub signed_request: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub pixel_digest: Option<String>,
    pub image_cid: Option<String>,
    pub metadata_cid: Option<String>,
    pub node_signature: Option<String>,
    pub tx_hash: Option<String>,
    pub token_id: Option<String>,
    pub error: Option<String>,
    /// Where the job runs: here, or forwarded to a peer.
    pub route: JobRoute,
    /// The peer id of the node running a forwarded job, once one took it.
    pub executor: Option<String>,
    /// The peer id of the node that forwarded this job here (its creator talks to that node).
    pub origin: Option<String>,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRoute {
    /// This node generates, pins and mints it.
    Local,
    /// A peer does; this node follows it and serves its status.
    Forwarded,
}

impl JobRoute {
    fn as_str(self) -> &'static str {
        match self {
            JobRoute::Local => "local",
            JobRoute::Forwarded => "forwarded",
        }
    }
}

/// The fields a state change may set; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub pixel_digest: Option<String>,
    pub image_cid: Option<String>,
    pub metadata_cid: Option<String>,
    pub node_signature: Option<String>,
    pub tx_hash: Option<String>,
    pub token_id: Option<String>,
    pub error: Option<String>,
}

/// Whether `insert` created the job or found it already there (submission is idempotent).
#[derive(Debug)]
pub enum Inserted {
    New(JobRecord),
    Existing(JobRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {id} cannot move from {from} to {to}")]
    Transition { id: String, from: JobState, to: JobState },
    #[error("job store holds an unreadable state: {0}")]
    Corrupt(String),
}

pub struct JobStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    signed_request TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    pixel_digest   TEXT,
    image_cid      TEXT,
    metadata_cid   TEXT,
    node_signature TEXT,
    tx_hash        TEXT,
    token_id       TEXT,
    error          TEXT,
    route          TEXT NOT NULL DEFAULT 'local',
    executor       TEXT,
    origin         TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS spot_checks (
    token_id   TEXT NOT NULL,
    checker    TEXT NOT NULL,
    checked_at INTEGER NOT NULL,
    written    INTEGER NOT NULL,
    spot_check TEXT NOT NULL,
    PRIMARY KEY (token_id, checker)
);
CREATE INDEX IF NOT EXISTS spot_checks_written ON spot_checks(written);
";

/// Columns added after the first schema, for stores created before them.
const ADDED_COLUMNS: [(&str, &str); 3] =
    [("route", "TEXT NOT NULL DEFAULT 'local'"), ("executor", "TEXT"), ("origin", "TEXT")];

const COLUMNS: &str = "id, state, signed_request, created_at, updated_at, pixel_digest, image_cid, \
                       metadata_cid, node_signature, tx_hash, token_id, error, route, executor, origin";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn record(row: &Row<'_>) -> rusqlite::Result<(JobRecord, String)> {
    let state: String = row.get(1)?;
    let route: String = row.get(12)?;
    Ok((
        JobRecord {
            id: row.get(0)?,
            state: JobState::Received,
            signed_request: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
            pixel_digest: row.get(5)?,
            image_cid: row.get(6)?,
            metadata_cid: row.get(7)?,
            node_signature: row.get(8)?,
            tx_hash: row.get(9)?,
            token_id: row.get(10)?,
            error: row.get(11)?,
            route: if route == JobRoute::Forwarded.as_str() { JobRoute::Forwarded } else { JobRoute::Local },
            executor: row.get(13)?,
            origin: row.get(14)?,
        },
        state,
    ))
}

fn with_state((mut job, state): (JobRecord, String)) -> Result<JobRecord, StoreError> {
    job.state = state.parse().map_err(StoreError::Corrupt)?;
    Ok(job)
}

impl JobStore {
    /// Opens (or creates) the store at `path`, in WAL mode so readers never wait for the pipeline.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        for (column, definition) in ADDED_COLUMNS {
            let present: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
                params![column],
                |row| row.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {column} {definition}"))?;
            }
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written row (SQLite is transactional),
        // so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a new job in `Received`, or returns the one already stored under this id. `origin`
    /// is the peer that forwarded it here, if any.
    pub fn insert(
        &self,
        id: &str,
        signed_request: &str,
        route: JobRoute,
        origin: Option<&str>,
    ) -> Result<Inserted, StoreError> {
        let conn = self.conn();
        let t = now();
        let added = conn.execute(
            "INSERT OR IGNORE INTO jobs (id, state, signed_request, created_at, updated_at, route, origin)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
            params![id, JobState::Received.as_str(), signed_request, t, route.as_str(), origin],
        )?;
        let job = Self::get_locked(&conn, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        Ok(if added == 1 { Inserted::New(job) } else { Inserted::Existing(job) })
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Self::get_locked(&self.conn(), id)
    }

    fn get_locked(conn: &Connection, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
        conn.query_row(&sql, params![id], record).optional()?.map(with_state).transpose()
    }

    /// Moves a job to `to`, setting the given outputs, if the move is allowed from its current state.
    pub fn transition(&self, id: &str, to: JobState, outputs: Outputs) -> Result<JobRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = Self::get_locked(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if !current.state.allows(to) {
            return Err(StoreError::Transition { id: id.to_owned(), from: current.state, to });
        }
        Self::write_state(&tx, id, to, outputs)?;
        let updated = Self::get_locked(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        tx.commit()?;
        Ok(updated)
    }

    fn write_state(conn: &Connection, id: &str, to: JobState, outputs: Outputs) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE jobs SET state = ?2, updated_at = ?3,
                pixel_digest = COALESCE(?4, pixel_digest), image_cid = COALESCE(?5, image_cid),
                metadata_cid = COALESCE(?6, metadata_cid), node_signature = COALESCE(?7, node_signature),
                tx_hash = COALESCE(?8, tx_hash), token_id = COALESCE(?9, token_id), error = COALESCE(?10, error)
             WHERE id = ?1",
            params![
                id,
                to.as_str(),
                now(),
                outputs.pixel_digest,
                outputs.image_cid,
                outputs.metadata_cid,
                outputs.node_signature,
                outputs.tx_hash,
                outputs.token_id,
                outputs.error
            ],
        )?;
        Ok(())
    }

    /// Records the state a forwarded job reached at its executor. The executor is the source of
    /// truth, so any move is taken except out of a terminal state.
    pub fn mirror(&self, id: &str, to: JobState, outputs: Outputs) -> Result<JobRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = Self::get_locked(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if current.state.is_terminal() {
            return Err(StoreError::Transition { id: id.to_owned(), from: current.state, to });
        }
        Self::write_state(&tx, id, to, outputs)?;
        let updated = Self::get_locked(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        tx.commit()?;
        Ok(updated)
    }

    /// Sets (or clears, for a fail-over) the peer running a forwarded job.
    pub fn set_executor(&self, id: &str, executor: Option<&str>) -> Result<JobRecord, StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET executor = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, executor, now()],
        )?;
        Self::get_locked(&conn, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    /// Every job that still has work to do, oldest first.
    pub fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE state NOT IN ('minted', 'failed', 'cancelled', 'expired') \
             ORDER BY created_at, id"
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], record)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(with_state).collect()
    }

    /// How many jobs wait for or use this node's generator.
    pub fn queued(&self) -> Result<usize, StoreError> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE route = 'local' AND state IN ('received', 'queued', 'generating')",
            [],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, JobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn insert_is_idempotent() {
        let (_dir, store) = store();
        assert!(matches!(store.insert("0xaa", "{}", JobRoute::Local, None).unwrap(), Inserted::New(_)));
        match store.insert("0xaa", "{\"other\":1}", JobRoute::Local, None).unwrap() {
            Inserted::Existing(job) => assert_eq!(job.signed_request, "{}"),
            Inserted::New(_) => panic!("second insert created a job"),
        }
    }

    #[test]
    fn transitions_keep_outputs_and_refuse_illegal_moves() {
        let (_dir, store) = store();
        store.insert("0xaa", "{}", JobRoute::Local, None).unwrap();
        store.transition("0xaa", JobState::Queued, Outputs::default()).unwrap();
        store.transition("0xaa", JobState::Generating, Outputs::default()).unwrap();
        let outputs = Outputs { pixel_digest: Some("0x01".into()), ..Outputs::default() };
        store.transition("0xaa", JobState::Generated, outputs).unwrap();
        let pinned = Outputs { image_cid: Some("bafk".into()), ..Outputs::default() };
        let job = store.transition("0xaa", JobState::Pinned, pinned).unwrap();
        assert_eq!(job.pixel_digest.as_deref(), Some("0x01"));
        assert_eq!(job.image_cid.as_deref(), Some("bafk"));
        let err = store.transition("0xaa", JobState::Queued, Outputs::default()).unwrap_err();
        assert!(matches!(err, StoreError::Transition { .. }), "{err}");
    }

    #[test]
    fn survives_reopen_and_lists_unfinished_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        {
            let store = JobStore::open(&path).unwrap();
            store.insert("0x01", "{}", JobRoute::Local, None).unwrap();
            store.insert("0x02", "{}", JobRoute::Local, Some("peer")).unwrap();
            store
                .transition(
                    "0x02",
                    JobState::Failed,
                    Outputs { error: Some("x".into()), ..Outputs::default() },
                )
                .unwrap();
        }
        let store = JobStore::open(&path).unwrap();
        let open: Vec<_> = store.unfinished().unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(open, vec!["0x01".to_string()]);
        assert_eq!(store.get("0x02").unwrap().unwrap().error.as_deref(), Some("x"));
        assert_eq!(store.queued().unwrap(), 1);
    }

    #[test]
    fn forwarded_jobs_mirror_their_executor_and_do_not_count_as_local_work() {
        let (_dir, store) = store();
        store.insert("0xbb", "{}", JobRoute::Forwarded, None).unwrap();
        assert_eq!(store.queued().unwrap(), 0);
        let job = store.set_executor("0xbb", Some("12D3KooWPeer")).unwrap();
        assert_eq!((job.route, job.executor.as_deref()), (JobRoute::Forwarded, Some("12D3KooWPeer")));
        // The executor may report any state, even one that skips ahead or starts over.
        store.mirror("0xbb", JobState::Generating, Outputs::default()).unwrap();
        store.mirror("0xbb", JobState::Received, Outputs::default()).unwrap();
        let done = Outputs { token_id: Some("7".into()), ..Outputs::default() };
        assert_eq!(store.mirror("0xbb", JobState::Minted, done).unwrap().token_id.as_deref(), Some("7"));
        assert!(store.mirror("0xbb", JobState::Failed, Outputs::default()).is_err(), "terminal is final");
    }

    #[test]
    fn a_store_from_before_routing_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, signed_request TEXT NOT NULL,
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, pixel_digest TEXT, image_cid TEXT,
             metadata_cid TEXT, node_signature TEXT, tx_hash TEXT, token_id TEXT, error TEXT);
             INSERT INTO jobs (id, state, signed_request, created_at, updated_at) VALUES ('0x01', 'queued', '{}', 1, 1);",
        )
        .unwrap();
        drop(old);
        let store = JobStore::open(&path).unwrap();
        let job = store.get("0x01").unwrap().unwrap();
        assert_eq!(
            (job.state, job.route, job.executor, job.origin),
            (JobState::Queued, JobRoute::Local, None, None)
        );
    }
}
