//! The replication store, in the node's database: the pin receipts known for each token (this
//! node's own, those its peers sent for tokens it minted, and those shared with it as a holder),
//! and the tokens this node minted that are still short of copies, with when to ask again. Both
//! survive restarts, so a node that stops mid-way goes on asking where it left off.

use alloy::primitives::{Address, U256};
use genmint_p2p::pin::PinReceipt;
use rusqlite::params;

use crate::db::{Database, DbError};
use crate::provenance::ids::JobId;

/// The most receipts kept for one token.
pub const MAX_RECEIPTS_PER_TOKEN: usize = 16;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pin_receipts (
    token_id  TEXT NOT NULL,
    holder    TEXT NOT NULL,
    bytes     INTEGER NOT NULL,
    pinned_at INTEGER NOT NULL,
    receipt   TEXT NOT NULL,
    PRIMARY KEY (token_id, holder)
);
CREATE TABLE IF NOT EXISTS replication_pending (
    token_id     TEXT PRIMARY KEY,
    image_cid    TEXT NOT NULL,
    metadata_cid TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    last_error   TEXT
);
";

#[derive(Debug, thiserror::Error)]
pub enum ReplicationStoreError {
    #[error("replication store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("replication store: {0}")]
    Db(#[from] DbError),
    #[error("replication store holds an unreadable receipt: {0}")]
    Corrupt(String),
}

/// A token this node minted that still needs copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub token: U256,
    pub image_cid: String,
    pub metadata_cid: String,
    /// Rounds of asking so far.
    pub attempts: u32,
    /// Unix seconds of the next round.
    pub next_at: i64,
    pub last_error: Option<String>,
}

/// The replication store; cheap to clone.
#[derive(Clone)]
pub struct ReplicationStore {
    db: Database,
}

fn token_key(token: U256) -> String {
    JobId::of_token(token).to_string()
}

fn holder_key(holder: Address) -> String {
    format!("{holder:#x}")
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl ReplicationStore {
    /// The replication store in `db`, creating its tables. Blocks: call it at startup.
    pub fn new(db: Database) -> Result<Self, ReplicationStoreError> {
        db.run_now(|conn| conn.execute_batch(SCHEMA))?;
        Ok(Self { db })
    }

    /// Keeps `receipt` (already verified) as its holder's word on its token; a newer one replaces
    /// an older one. Returns false when the token already has the most receipts kept.
    pub async fn record(
        &self,
        token: U256,
        holder: Address,
        receipt: PinReceipt,
    ) -> Result<bool, ReplicationStoreError> {
        let json =
            serde_json::to_string(&receipt).map_err(|e| ReplicationStoreError::Corrupt(e.to_string()))?;
        let (token, holder) = (token_key(token), holder_key(holder));
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let held: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM pin_receipts WHERE token_id = ?1 AND holder != ?2",
                    params![token, holder],
                    |row| row.get(0),
                )?;
                if usize::try_from(held).unwrap_or(usize::MAX) >= MAX_RECEIPTS_PER_TOKEN {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO pin_receipts (token_id, holder, bytes, pinned_at, receipt)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (token_id, holder) DO UPDATE SET bytes = excluded.bytes,
                         pinned_at = excluded.pinned_at, receipt = excluded.receipt
                     WHERE excluded.pinned_at >= pin_receipts.pinned_at",
                    params![token, holder, as_i64(receipt.bytes), as_i64(receipt.pinned_at), json],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    /// The receipts held for a token, oldest first.
    pub async fn receipts(&self, token: U256) -> Result<Vec<PinReceipt>, ReplicationStoreError> {
        let token = token_key(token);
        self.db
            .run(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT receipt FROM pin_receipts WHERE token_id = ?1 ORDER BY pinned_at, holder",
                )?;
                let rows = statement
                    .query_map(params![token], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.iter()
                    .map(|json| {
                        serde_json::from_str(json).map_err(|e| ReplicationStoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            })
            .await
    }

    /// The bytes `holder` pins by the receipts held (this node's budget, with its own address).
    pub async fn bytes_held_by(&self, holder: Address) -> Result<u64, ReplicationStoreError> {
        let holder = holder_key(holder);
        self.db
            .run(move |conn| {
                let bytes: i64 = conn.query_row(
                    "SELECT COALESCE(SUM(bytes), 0) FROM pin_receipts WHERE holder = ?1",
                    params![holder],
                    |row| row.get(0),
                )?;
                Ok(u64::try_from(bytes).unwrap_or_default())
            })
            .await
    }

    /// Notes a token this node minted, to be asked for now (a second call changes nothing).
    pub async fn want_copies(
        &self,
        token: U256,
        image_cid: String,
        metadata_cid: String,
        now: i64,
    ) -> Result<(), ReplicationStoreError> {
        let token = token_key(token);
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO replication_pending (token_id, image_cid, metadata_cid, attempts, next_at)
                     VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (token_id) DO NOTHING",
                    params![token, image_cid, metadata_cid, now],
                )?;
                Ok(())
            })
            .await
    }

    /// The tokens due for another round at `now`, soonest first, at most `limit`.
    pub async fn due(&self, now: i64, limit: usize) -> Result<Vec<Pending>, ReplicationStoreError> {
        self.db
            .run(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT token_id, image_cid, metadata_cid, attempts, next_at, last_error
                     FROM replication_pending WHERE next_at <= ?1 ORDER BY next_at LIMIT ?2",
                )?;
                let rows = statement.query_map(params![now, as_i64(limit as u64)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, u32>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ))
                })?;
                let mut due = Vec::new();
                for row in rows {
                    let (token, image_cid, metadata_cid, attempts, next_at, last_error) = row?;
                    let id: JobId = token.parse().map_err(|e: crate::provenance::ids::IdError| {
                        ReplicationStoreError::Corrupt(e.to_string())
                    })?;
                    due.push(Pending {
                        token: id.token_id(),
                        image_cid,
                        metadata_cid,
                        attempts,
                        next_at,
                        last_error,
                    });
                }
                Ok(due)
            })
            .await
    }

    /// The pending entry of a token, if it still needs copies.
    pub async fn pending(&self, token: U256) -> Result<Option<Pending>, ReplicationStoreError> {
        Ok(self.due(i64::MAX, usize::MAX >> 1).await?.into_iter().find(|p| p.token == token))
    }

    /// How many tokens still need copies.
    pub async fn pending_count(&self) -> Result<i64, ReplicationStoreError> {
        self.db
            .run(|conn| Ok(conn.query_row("SELECT COUNT(*) FROM replication_pending", [], |row| row.get(0))?))
            .await
    }

    /// Another round for `token` at `next_at`, after `error`.
    pub async fn retry_at(
        &self,
        token: U256,
        next_at: i64,
        error: String,
    ) -> Result<(), ReplicationStoreError> {
        let token = token_key(token);
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE replication_pending SET attempts = attempts + 1, next_at = ?2, last_error = ?3
                     WHERE token_id = ?1",
                    params![token, next_at, error],
                )?;
                Ok(())
            })
            .await
    }

    /// The token has its copies: stop asking.
    pub async fn done(&self, token: U256) -> Result<(), ReplicationStoreError> {
        let token = token_key(token);
        self.db
            .run(move |conn| {
                conn.execute("DELETE FROM replication_pending WHERE token_id = ?1", params![token])?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ReplicationStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, ReplicationStore::new(db).unwrap())
    }

    fn receipt(token: U256, holder: Address, bytes: u64, pinned_at: u64) -> PinReceipt {
        PinReceipt {
            version: genmint_p2p::pin::PIN_RECEIPT_VERSION,
            token_id: token_key(token),
            image_cid: "bafkreiimage".into(),
            metadata_cid: "bafkreimetadata".into(),
            holder: holder_key(holder),
            holder_peer_id: "p".into(),
            kubo_peer_id: "k".into(),
            kubo_addresses: Vec::new(),
            bytes,
            pinned_at,
            signature: String::new(),
        }
    }

    #[tokio::test]
    async fn receipts_are_kept_per_token_and_holder_and_count_against_the_holders_budget() {
        let (_dir, store) = store();
        let (token, other) = (U256::from(7), U256::from(8));
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        assert!(store.record(token, a, receipt(token, a, 100, 10)).await.unwrap());
        assert!(store.record(token, b, receipt(token, b, 100, 11)).await.unwrap());
        assert!(store.record(other, a, receipt(other, a, 50, 12)).await.unwrap());
        // An older receipt does not replace a newer one; a newer one does.
        store.record(token, a, receipt(token, a, 999, 9)).await.unwrap();
        assert_eq!(
            store.receipts(token).await.unwrap(),
            vec![receipt(token, a, 100, 10), receipt(token, b, 100, 11)]
        );
        assert_eq!(store.bytes_held_by(a).await.unwrap(), 150);
        assert_eq!(store.bytes_held_by(Address::repeat_byte(3)).await.unwrap(), 0);
        for byte in 3..=(MAX_RECEIPTS_PER_TOKEN as u8 + 2) {
            let h = Address::repeat_byte(byte);
            store.record(token, h, receipt(token, h, 1, 20)).await.unwrap();
        }
        assert_eq!(store.receipts(token).await.unwrap().len(), MAX_RECEIPTS_PER_TOKEN);
    }

    #[tokio::test]
    async fn tokens_short_of_copies_come_due_retry_later_and_leave_when_done() {
        let (_dir, store) = store();
        let token = U256::from(7);
        store.want_copies(token, "bafkreiimage".into(), "bafkreimeta".into(), 100).await.unwrap();
        store.want_copies(token, "bafkreiimage".into(), "bafkreimeta".into(), 500).await.unwrap();
        assert_eq!(store.due(99, 10).await.unwrap(), vec![]);
        let due = store.due(100, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].token, due[0].attempts), (token, 0));
        store.retry_at(token, 160, "no peer took it".into()).await.unwrap();
        assert!(store.due(159, 10).await.unwrap().is_empty());
        let again = store.pending(token).await.unwrap().unwrap();
        assert_eq!((again.attempts, again.last_error.as_deref()), (1, Some("no peer took it")));
        assert_eq!(store.pending_count().await.unwrap(), 1);
        store.done(token).await.unwrap();
        assert_eq!(store.pending(token).await.unwrap(), None);
    }
}
