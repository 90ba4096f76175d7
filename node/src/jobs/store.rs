//! The SQLite job store: one row per job, written at every state change so that a restart resumes
//! each job where it stopped. Rows are parsed into typed records once, here; a row that does not
//! parse is reported as corrupt rather than guessed at.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::state::JobState;
use crate::db::{Database, DbError};
use crate::ipfs::Cid;
use crate::provenance::ids::{JobId, PixelDigest, TxHash};

/// A peer of this node, by its network identity (the libp2p peer id as text). Jobs only store and
/// compare it; the network layer gives it meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerRef(pub String);

impl fmt::Display for PeerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a job produced so far: the one definition the store and the API view use (the job
/// protocol's `JobStatus` converts to and from it in `network`). In a state change, `None` leaves a
/// field as it is (the confirmation fields are cleared when a job goes back to `Pinned` or
/// `Minting`). In JSON digests, signature and CIDs are text (0x-hex), the token id decimal text,
/// counts and block numbers are numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobOutputs {
    pub pixel_digest: Option<PixelDigest>,
    pub image_cid: Option<Cid>,
    pub metadata_cid: Option<Cid>,
    /// The node's EIP-712 signature over the attestation, 65 bytes.
    pub node_signature: Option<Bytes>,
    pub tx_hash: Option<TxHash>,
    #[serde(serialize_with = "decimal")]
    pub token_id: Option<U256>,
    /// The operator of the node that minted the token, as the contract records it: this node's,
    /// a peer's that ran the job, or, for a request minted before, whichever node minted it.
    pub minted_by: Option<Address>,
    /// The block that holds the mint, while it is confirming and once minted by this node.
    pub mint_block: Option<u64>,
    pub mint_block_hash: Option<B256>,
    /// Blocks from the mint's block to the chain's head, the mint's own block included.
    pub confirmations: Option<u64>,
    /// How many confirmations make the mint final on this chain (`[chain] confirmations`).
    pub confirmations_needed: Option<u64>,
    /// How many times the mint was sent again because a reorg or the mempool dropped it.
    pub resends: Option<u32>,
    pub error: Option<String>,
}

fn decimal<S: serde::Serializer>(value: &Option<U256>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

impl JobOutputs {
    /// Outputs holding only a failure's reason.
    pub fn failure(reason: impl Into<String>) -> Self {
        Self { error: Some(reason.into()), ..Self::default() }
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub state: JobState,
    /// The signed request exactly as the creator submitted it (JSON).
    pub signed_request: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub outputs: JobOutputs,
    /// Where the job runs: here, or forwarded to a peer.
    pub route: JobRoute,
    /// The node running a forwarded job, once one took it.
    pub executor: Option<PeerRef>,
    /// The node that forwarded this job here (its creator talks to that node).
    pub origin: Option<PeerRef>,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRoute {
    /// This node generates, pins and mints it.
    Local,
    /// A peer does; this node follows it and serves its status.
    Forwarded,
}

impl JobRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            JobRoute::Local => "local",
            JobRoute::Forwarded => "forwarded",
        }
    }
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
    #[error("job store: {0}")]
    Db(#[from] DbError),
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {id} cannot move from {from} to {to}")]
    Transition { id: JobId, from: JobState, to: JobState },
    #[error("job store holds an unreadable {column}: {detail}")]
    Corrupt { column: &'static str, detail: String },
}

/// The job store; cheap to clone.
#[derive(Clone)]
pub struct JobStore {
    db: Database,
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
    origin         TEXT,
    minted_by      TEXT,
    mint_block     TEXT,
    mint_block_hash TEXT,
    confirmations  TEXT,
    confirmations_needed TEXT,
    resends        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
";

/// Columns added after the first schema, for stores created before them.
const ADDED_COLUMNS: [(&str, &str); 9] = [
    ("route", "TEXT NOT NULL DEFAULT 'local'"),
    ("executor", "TEXT"),
    ("origin", "TEXT"),
    ("minted_by", "TEXT"),
    ("mint_block", "TEXT"),
    ("mint_block_hash", "TEXT"),
    ("confirmations", "TEXT"),
    ("confirmations_needed", "TEXT"),
    ("resends", "TEXT"),
];

const COLUMNS: &str = "id, state, signed_request, created_at, updated_at, pixel_digest, image_cid, \
                       metadata_cid, node_signature, tx_hash, token_id, error, route, executor, origin, \
                       minted_by, mint_block, mint_block_hash, confirmations, confirmations_needed, resends";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// The text columns of one row, before parsing.
struct RawRow {
    id: String,
    state: String,
    signed_request: String,
    created_at: i64,
    updated_at: i64,
    outputs: [Option<String>; 13],
    route: String,
    executor: Option<String>,
    origin: Option<String>,
}

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        state: row.get(1)?,
        signed_request: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        outputs: [
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
            row.get(8)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            row.get(15)?,
            row.get(16)?,
            row.get(17)?,
            row.get(18)?,
            row.get(19)?,
            row.get(20)?,
        ],
        route: row.get(12)?,
        executor: row.get(13)?,
        origin: row.get(14)?,
    })
}

fn column<T: std::str::FromStr>(column: &'static str, text: Option<String>) -> Result<Option<T>, StoreError>
where
    T::Err: fmt::Display,
{
    text.map(|t| t.parse().map_err(|e: T::Err| StoreError::Corrupt { column, detail: format!("{t:?}: {e}") }))
        .transpose()
}

impl RawRow {
    fn parse(self) -> Result<JobRecord, StoreError> {
        let [
            pixel_digest,
            image_cid,
            metadata_cid,
            node_signature,
            tx_hash,
            token_id,
            error,
            minted_by,
            mint_block,
            mint_block_hash,
            confirmations,
            confirmations_needed,
            resends,
        ] = self.outputs;
        let corrupt = |column, detail: String| StoreError::Corrupt { column, detail };
        Ok(JobRecord {
            id: self.id.parse().map_err(|e: crate::provenance::ids::IdError| corrupt("id", e.to_string()))?,
            state: self.state.parse().map_err(|e| corrupt("state", e))?,
            signed_request: self.signed_request,
            created_at: self.created_at,
            updated_at: self.updated_at,
            outputs: JobOutputs {
                pixel_digest: column("pixel_digest", pixel_digest)?,
                image_cid: column("image_cid", image_cid)?,
                metadata_cid: column("metadata_cid", metadata_cid)?,
                node_signature: column("node_signature", node_signature)?,
                tx_hash: column("tx_hash", tx_hash)?,
                token_id: column("token_id", token_id)?,
                minted_by: column("minted_by", minted_by)?,
                mint_block: column("mint_block", mint_block)?,
                mint_block_hash: column("mint_block_hash", mint_block_hash)?,
                confirmations: column("confirmations", confirmations)?,
                confirmations_needed: column("confirmations_needed", confirmations_needed)?,
                resends: column("resends", resends)?,
                error,
            },
            route: if self.route == JobRoute::Forwarded.as_str() {
                JobRoute::Forwarded
            } else {
                JobRoute::Local
            },
            executor: self.executor.map(PeerRef),
            origin: self.origin.map(PeerRef),
        })
    }
}

fn get(conn: &Connection, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
    conn.query_row(&sql, params![id.to_string()], raw).optional()?.map(RawRow::parse).transpose()
}

fn get_existing(conn: &Connection, id: JobId) -> Result<JobRecord, StoreError> {
    get(conn, id)?.ok_or(StoreError::NotFound(id))
}

fn write_state(conn: &Connection, id: JobId, to: JobState, outputs: &JobOutputs) -> Result<(), StoreError> {
    let text = |value: Option<String>| value;
    conn.execute(
        "UPDATE jobs SET state = ?2, updated_at = ?3,
            pixel_digest = COALESCE(?4, pixel_digest), image_cid = COALESCE(?5, image_cid),
            metadata_cid = COALESCE(?6, metadata_cid), node_signature = COALESCE(?7, node_signature),
            tx_hash = COALESCE(?8, tx_hash), token_id = COALESCE(?9, token_id), error = COALESCE(?10, error),
            minted_by = COALESCE(?11, minted_by),
            mint_block = CASE WHEN ?2 IN ('pinned', 'minting') THEN NULL ELSE COALESCE(?12, mint_block) END,
            mint_block_hash = CASE WHEN ?2 IN ('pinned', 'minting') THEN NULL ELSE COALESCE(?13, mint_block_hash) END,
            confirmations = CASE WHEN ?2 IN ('pinned', 'minting') THEN NULL ELSE COALESCE(?14, confirmations) END,
            confirmations_needed = CASE WHEN ?2 IN ('pinned', 'minting') THEN NULL
                ELSE COALESCE(?15, confirmations_needed) END,
            resends = COALESCE(?16, resends)
         WHERE id = ?1",
        params![
            id.to_string(),
            to.as_str(),
            now(),
            text(outputs.pixel_digest.map(|d| d.to_string())),
            text(outputs.image_cid.as_ref().map(ToString::to_string)),
            text(outputs.metadata_cid.as_ref().map(ToString::to_string)),
            text(outputs.node_signature.as_ref().map(ToString::to_string)),
            text(outputs.tx_hash.map(|t| t.to_string())),
            text(outputs.token_id.map(|t| t.to_string())),
            outputs.error,
            text(outputs.minted_by.map(|a| a.to_checksum(None))),
            text(outputs.mint_block.map(|n| n.to_string())),
            text(outputs.mint_block_hash.map(|h| h.to_string())),
            text(outputs.confirmations.map(|n| n.to_string())),
            text(outputs.confirmations_needed.map(|n| n.to_string())),
            text(outputs.resends.map(|n| n.to_string())),
        ],
    )?;
    Ok(())
}

/// Moves a job inside one transaction, if `allowed(current state)`.
fn move_job(
    conn: &mut Connection,
    id: JobId,
    to: JobState,
    outputs: &JobOutputs,
    allowed: impl FnOnce(JobState) -> bool,
) -> Result<JobRecord, StoreError> {
    let tx = conn.transaction()?;
    let current = get_existing(&tx, id)?;
    if !allowed(current.state) {
        return Err(StoreError::Transition { id, from: current.state, to });
    }
    write_state(&tx, id, to, outputs)?;
    let updated = get_existing(&tx, id)?;
    tx.commit()?;
    Ok(updated)
}

fn create_schema(conn: &mut Connection) -> Result<(), rusqlite::Error> {
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
    Ok(())
}

impl JobStore {
    /// The job store in `db`, creating (or upgrading) its table. Blocks: call it at startup.
    pub fn new(db: Database) -> Result<Self, StoreError> {
        db.run_now(create_schema)?;
        Ok(Self { db })
    }

    /// Opens the database at `path` and the job store in it. Blocks.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::new(Database::open(path)?)
    }

    /// Stores a new job in `Received`, or returns the one already stored under this id. A job
    /// that failed starts again from `Received` (its outputs and error cleared): the creator's
    /// signature still holds, and the cause may have passed. `origin` is the peer that forwarded
    /// it here, if any.
    pub async fn insert(
        &self,
        id: JobId,
        signed_request: String,
        route: JobRoute,
        origin: Option<PeerRef>,
    ) -> Result<Inserted, StoreError> {
        self.db
            .run(move |conn| {
                let added = conn.execute(
                    "INSERT INTO jobs (id, state, signed_request, created_at, updated_at, route, origin)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)
                     ON CONFLICT(id) DO UPDATE SET state = excluded.state,
                        signed_request = excluded.signed_request, created_at = excluded.created_at,
                        updated_at = excluded.updated_at, route = excluded.route, origin = excluded.origin,
                        executor = NULL, pixel_digest = NULL, image_cid = NULL, metadata_cid = NULL,
                        node_signature = NULL, tx_hash = NULL, token_id = NULL, error = NULL, minted_by = NULL,
                        mint_block = NULL, mint_block_hash = NULL, confirmations = NULL,
                        confirmations_needed = NULL, resends = NULL
                     WHERE jobs.state = 'failed'",
                    params![
                        id.to_string(),
                        JobState::Received.as_str(),
                        signed_request,
                        now(),
                        route.as_str(),
                        origin.map(|o| o.0)
                    ],
                )?;
                let job = get_existing(conn, id)?;
                Ok(if added == 1 { Inserted::New(job) } else { Inserted::Existing(job) })
            })
            .await
    }

    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.db.run(move |conn| get(conn, id)).await
    }

    /// Moves a job to `to`, setting the given outputs, if the move is allowed from its current state.
    pub async fn transition(
        &self,
        id: JobId,
        to: JobState,
        outputs: JobOutputs,
    ) -> Result<JobRecord, StoreError> {
        self.db.run(move |conn| move_job(conn, id, to, &outputs, |from| from.allows(to))).await
    }

    /// Records the state a forwarded job reached at its executor. The executor is the source of
    /// truth, so any move is taken except out of a terminal state.
    pub async fn mirror(
        &self,
        id: JobId,
        to: JobState,
        outputs: JobOutputs,
    ) -> Result<JobRecord, StoreError> {
        self.db.run(move |conn| move_job(conn, id, to, &outputs, |from| !from.is_terminal())).await
    }

    /// Sets (or clears, for a fail-over) the peer running a forwarded job.
    pub async fn set_executor(&self, id: JobId, executor: Option<PeerRef>) -> Result<JobRecord, StoreError> {
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE jobs SET executor = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.to_string(), executor.map(|e| e.0), now()],
                )?;
                get_existing(conn, id)
            })
            .await
    }

    /// Moves a forwarded job that no peer has taken yet to this node (`Local`), or back.
    pub async fn set_route(&self, id: JobId, route: JobRoute) -> Result<JobRecord, StoreError> {
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE jobs SET route = ?2, updated_at = ?3 WHERE id = ?1 AND executor IS NULL",
                    params![id.to_string(), route.as_str(), now()],
                )?;
                get_existing(conn, id)
            })
            .await
    }

    /// How many forwarded jobs wait for a peer (or this node) to take them.
    pub async fn unplaced(&self) -> Result<usize, StoreError> {
        self.db
            .run(|conn| {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM jobs WHERE route = 'forwarded' AND executor IS NULL \
                     AND state NOT IN ('minted', 'failed', 'cancelled', 'expired')",
                    [],
                    |row| row.get(0),
                )?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
            .await
    }

    /// Every job that still has work to do, oldest first.
    pub async fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.db
            .run(|conn| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM jobs WHERE state NOT IN ('minted', 'failed', 'cancelled', 'expired') \
                     ORDER BY created_at, id"
                );
                let mut statement = conn.prepare(&sql)?;
                let rows = statement.query_map([], raw)?.collect::<Result<Vec<_>, _>>()?;
                rows.into_iter().map(RawRow::parse).collect()
            })
            .await
    }

    /// How many jobs wait for or use this node's generator.
    pub async fn queued(&self) -> Result<usize, StoreError> {
        self.db
            .run(|conn| {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM jobs WHERE route = 'local' AND state IN ('received', 'queued', 'generating')",
                    [],
                    |row| row.get(0),
                )?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
            .await
    }

    /// How many of this node's jobs came before `id` and still wait for or use the generator: the
    /// job's place in the queue (0 is next).
    /// How many jobs are in each state (every state, zeros included), and when the oldest job not
    /// in a terminal state was received (unix seconds).
    pub async fn census(&self) -> Result<(Vec<(JobState, i64)>, Option<i64>), StoreError> {
        self.db
            .run(move |conn| {
                let mut counts: Vec<(JobState, i64)> =
                    JobState::ALL.iter().map(|&state| (state, 0)).collect();
                let mut query = conn.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
                let rows =
                    query.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
                for row in rows {
                    let (state, count) = row?;
                    if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == state) {
                        entry.1 = count;
                    }
                }
                let terminal: Vec<String> = JobState::ALL
                    .iter()
                    .filter(|s| s.is_terminal())
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect();
                let oldest: Option<i64> = conn.query_row(
                    &format!("SELECT MIN(created_at) FROM jobs WHERE state NOT IN ({})", terminal.join(", ")),
                    [],
                    |row| row.get(0),
                )?;
                Ok((counts, oldest))
            })
            .await
    }

    pub async fn jobs_ahead(&self, id: JobId) -> Result<usize, StoreError> {
        self.db
            .run(move |conn| {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM jobs AS other, jobs AS this WHERE this.id = ?1 AND other.route = 'local' \
                     AND other.state IN ('received', 'queued', 'generating') \
                     AND (other.created_at, other.id) < (this.created_at, this.id)",
                    [id.to_string()],
                    |row| row.get(0),
                )?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;

    fn store() -> (tempfile::TempDir, JobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, store)
    }

    fn id(byte: u8) -> JobId {
        JobId(B256::repeat_byte(byte))
    }

    #[tokio::test]
    async fn insert_is_idempotent() {
        let (_dir, store) = store();
        assert!(matches!(
            store.insert(id(0xaa), "{}".into(), JobRoute::Local, None).await.unwrap(),
            Inserted::New(_)
        ));
        match store.insert(id(0xaa), "{\"other\":1}".into(), JobRoute::Local, None).await.unwrap() {
            Inserted::Existing(job) => assert_eq!(job.signed_request, "{}"),
            Inserted::New(_) => panic!("second insert created a job"),
        }
    }

    #[tokio::test]
    async fn a_failed_job_starts_over_when_submitted_again_and_no_other_does() {
        let (_dir, store) = store();
        store.insert(id(1), "{}".into(), JobRoute::Forwarded, None).await.unwrap();
        store.set_executor(id(1), Some(PeerRef("peer".into()))).await.unwrap();
        let failure =
            JobOutputs { tx_hash: Some(TxHash(B256::repeat_byte(5))), ..JobOutputs::failure("down") };
        store.transition(id(1), JobState::Failed, failure).await.unwrap();
        let Inserted::New(again) =
            store.insert(id(1), "{\"again\":1}".into(), JobRoute::Local, None).await.unwrap()
        else {
            panic!("a failed job was not started over")
        };
        assert_eq!(
            (again.state, again.route, again.executor, again.outputs),
            (JobState::Received, JobRoute::Local, None, JobOutputs::default())
        );
        assert_eq!(again.signed_request, "{\"again\":1}");
        store.transition(id(1), JobState::Cancelled, JobOutputs::default()).await.unwrap();
        let stays = store.insert(id(1), "{}".into(), JobRoute::Local, None).await.unwrap();
        assert!(
            matches!(stays, Inserted::Existing(job) if job.state == JobState::Cancelled),
            "cancelled stays"
        );
    }

    #[tokio::test]
    async fn transitions_keep_typed_outputs_and_refuse_illegal_moves() {
        let (_dir, store) = store();
        let job = id(0xaa);
        store.insert(job, "{}".into(), JobRoute::Local, None).await.unwrap();
        store.transition(job, JobState::Queued, JobOutputs::default()).await.unwrap();
        store.transition(job, JobState::Generating, JobOutputs::default()).await.unwrap();
        let digest = PixelDigest(B256::repeat_byte(1));
        let outputs = JobOutputs { pixel_digest: Some(digest), ..JobOutputs::default() };
        store.transition(job, JobState::Generated, outputs).await.unwrap();
        let cid = Cid::raw_sha256(b"image");
        let pinned = JobOutputs {
            image_cid: Some(cid.clone()),
            node_signature: Some(Bytes::from(vec![7; 65])),
            ..JobOutputs::default()
        };
        let record = store.transition(job, JobState::Pinned, pinned).await.unwrap();
        assert_eq!(record.outputs.pixel_digest, Some(digest));
        assert_eq!(record.outputs.image_cid, Some(cid));
        assert_eq!(record.outputs.node_signature, Some(Bytes::from(vec![7; 65])));
        let err = store.transition(job, JobState::Queued, JobOutputs::default()).await.unwrap_err();
        assert!(matches!(err, StoreError::Transition { .. }), "{err}");
    }

    #[tokio::test]
    async fn survives_reopen_and_lists_unfinished_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        {
            let store = JobStore::open(&path).unwrap();
            store.insert(id(1), "{}".into(), JobRoute::Local, None).await.unwrap();
            store.insert(id(2), "{}".into(), JobRoute::Local, Some(PeerRef("peer".into()))).await.unwrap();
            store.transition(id(2), JobState::Failed, JobOutputs::failure("x")).await.unwrap();
        }
        let store = JobStore::open(&path).unwrap();
        let open: Vec<_> = store.unfinished().await.unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(open, vec![id(1)]);
        let failed = store.get(id(2)).await.unwrap().unwrap();
        assert_eq!(
            (failed.outputs.error.as_deref(), failed.origin),
            (Some("x"), Some(PeerRef("peer".into())))
        );
        assert_eq!(store.queued().await.unwrap(), 1);
        store.insert(id(3), "{}".into(), JobRoute::Local, None).await.unwrap();
        assert_eq!(store.jobs_ahead(id(1)).await.unwrap(), 0);
        assert_eq!(store.jobs_ahead(id(3)).await.unwrap(), 1, "job 1 is still ahead; failed job 2 is not");
    }

    #[tokio::test]
    async fn forwarded_jobs_mirror_their_executor_and_do_not_count_as_local_work() {
        let (_dir, store) = store();
        let job = id(0xbb);
        store.insert(job, "{}".into(), JobRoute::Forwarded, None).await.unwrap();
        assert_eq!((store.queued().await.unwrap(), store.unplaced().await.unwrap()), (0, 1));
        let peer = PeerRef("12D3KooWPeer".into());
        let record = store.set_executor(job, Some(peer.clone())).await.unwrap();
        assert_eq!((record.route, record.executor), (JobRoute::Forwarded, Some(peer)));
        assert_eq!(store.unplaced().await.unwrap(), 0, "placed");
        assert_eq!(
            store.set_route(job, JobRoute::Local).await.unwrap().route,
            JobRoute::Forwarded,
            "it has a peer"
        );
        // The executor may report any state, even one that skips ahead or starts over.
        store.mirror(job, JobState::Generating, JobOutputs::default()).await.unwrap();
        store.mirror(job, JobState::Received, JobOutputs::default()).await.unwrap();
        let done = JobOutputs { token_id: Some(U256::from(7)), ..JobOutputs::default() };
        assert_eq!(
            store.mirror(job, JobState::Minted, done).await.unwrap().outputs.token_id,
            Some(U256::from(7))
        );
        assert!(
            store.mirror(job, JobState::Failed, JobOutputs::default()).await.is_err(),
            "terminal is final"
        );
    }

    #[tokio::test]
    async fn a_corrupt_row_is_reported_not_guessed() {
        let (dir, store) = store();
        store.insert(id(3), "{}".into(), JobRoute::Local, None).await.unwrap();
        let conn = Connection::open(dir.path().join("jobs.sqlite")).unwrap();
        conn.execute("UPDATE jobs SET tx_hash = 'nonsense'", []).unwrap();
        let err = store.get(id(3)).await.unwrap_err();
        assert!(err.to_string().contains("tx_hash"), "{err}");
    }

    #[tokio::test]
    async fn a_store_from_before_routing_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, signed_request TEXT NOT NULL,
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, pixel_digest TEXT, image_cid TEXT,
             metadata_cid TEXT, node_signature TEXT, tx_hash TEXT, token_id TEXT, error TEXT);
             INSERT INTO jobs (id, state, signed_request, created_at, updated_at) VALUES ('{}', 'queued', '{{}}', 1, 1);",
            id(1)
        ))
        .unwrap();
        drop(old);
        let store = JobStore::open(&path).unwrap();
        let job = store.get(id(1)).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.route, job.executor, job.origin),
            (JobState::Queued, JobRoute::Local, None, None)
        );
    }
}
