//! The spot-check store: the checks of tokens, this node's own and its peers', in the node's
//! database. One row per token and checker (a newer check replaces an older one), at most
//! [`MAX_SPOT_CHECKS`] rows (the least recently written go first). Each row keeps the signed check
//! as it arrived, so it can be shown and verified again.

use std::path::Path;

use alloy::primitives::{Address, U256};
use genmint_p2p::spot_check::SpotCheck;
use rusqlite::{Connection, params};

use crate::db::{Database, DbError};
use crate::provenance::ids::JobId;

/// The most spot checks kept.
pub const MAX_SPOT_CHECKS: usize = 10_000;

const SCHEMA: &str = "
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

#[derive(Debug, thiserror::Error)]
pub enum SpotCheckStoreError {
    #[error("spot-check store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("spot-check store: {0}")]
    Db(#[from] DbError),
    #[error("spot-check store holds an unreadable check: {0}")]
    Corrupt(String),
}

/// The spot-check store; cheap to clone.
#[derive(Clone)]
pub struct SpotCheckStore {
    db: Database,
}

/// How tokens and checkers are keyed: lowercase 0x-hex, whatever case a check arrived in.
fn token_key(token: U256) -> String {
    JobId::of_token(token).to_string()
}

fn checker_key(checker: Address) -> String {
    format!("{checker:#x}")
}

fn record_within(
    conn: &mut Connection,
    check: &SpotCheck,
    limit: usize,
) -> Result<bool, SpotCheckStoreError> {
    let json = serde_json::to_string(check).map_err(|e| SpotCheckStoreError::Corrupt(e.to_string()))?;
    let checked_at = i64::try_from(check.checked_at).unwrap_or(i64::MAX);
    let tx = conn.transaction()?;
    let kept = tx.execute(
        "INSERT INTO spot_checks (token_id, checker, checked_at, written, spot_check)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(written), 0) + 1 FROM spot_checks), ?4)
         ON CONFLICT (token_id, checker) DO UPDATE SET checked_at = excluded.checked_at,
             written = excluded.written, spot_check = excluded.spot_check
         WHERE excluded.checked_at >= spot_checks.checked_at",
        params![check.token_id.to_lowercase(), check.checker.to_lowercase(), checked_at, json],
    )?;
    tx.execute(
        "DELETE FROM spot_checks WHERE written <=
             (SELECT written FROM spot_checks ORDER BY written DESC LIMIT 1 OFFSET ?1)",
        params![i64::try_from(limit).unwrap_or(i64::MAX)],
    )?;
    tx.commit()?;
    Ok(kept == 1)
}

impl SpotCheckStore {
    /// The spot-check store in `db`, creating its table. Blocks: call it at startup.
    pub fn new(db: Database) -> Result<Self, SpotCheckStoreError> {
        db.run_now(|conn| conn.execute_batch(SCHEMA))?;
        Ok(Self { db })
    }

    /// Opens the database at `path` and the spot-check store in it. Blocks.
    pub fn open(path: &Path) -> Result<Self, SpotCheckStoreError> {
        Self::new(Database::open(path)?)
    }

    /// Keeps `check` as its checker's word on its token, unless a newer check by the same checker is
    /// held. Returns whether it was kept.
    pub async fn record(&self, check: SpotCheck) -> Result<bool, SpotCheckStoreError> {
        self.db.run(move |conn| record_within(conn, &check, MAX_SPOT_CHECKS)).await
    }

    /// The checks held for a token, oldest first.
    pub async fn of_token(&self, token: U256) -> Result<Vec<SpotCheck>, SpotCheckStoreError> {
        self.db
            .run(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT spot_check FROM spot_checks WHERE token_id = ?1 ORDER BY checked_at, checker",
                )?;
                let rows = statement
                    .query_map(params![token_key(token)], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.iter()
                    .map(|json| {
                        serde_json::from_str(json).map_err(|e| SpotCheckStoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            })
            .await
    }

    /// Whether `checker` (an operator address) has a check of the token on record.
    pub async fn has_check(&self, token: U256, checker: Address) -> Result<bool, SpotCheckStoreError> {
        self.db
            .run(move |conn| {
                let held: bool = conn.query_row(
                    "SELECT COUNT(*) > 0 FROM spot_checks WHERE token_id = ?1 AND checker = ?2",
                    params![token_key(token), checker_key(checker)],
                    |row| row.get(0),
                )?;
                Ok(held)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION};

    use super::*;

    fn check(token: u8, checker: u8, checked_at: u64) -> SpotCheck {
        let envelope = CheckEnvelope { engine: "e".into(), dtype: "f32".into(), device_class: "cpu".into() };
        SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: format!("0x{}", format!("{token:02X}").repeat(32)),
            model_hash: format!("0x{}", "11".repeat(32)),
            minted_by: format!("0x{}", "22".repeat(20)),
            expected_pixel_digest: format!("0x{}", "33".repeat(32)),
            regenerated_pixel_digest: format!("0x{}", "33".repeat(32)),
            perceptual_distance: None,
            outcome: Outcome::Match,
            checker: format!("0x{}", format!("{checker:02X}").repeat(20)),
            checker_envelope: envelope.clone(),
            minted_envelope: envelope,
            checked_at,
            signature: format!("0x{}", "44".repeat(65)),
            step_check: None,
        }
    }

    fn store() -> (tempfile::TempDir, SpotCheckStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SpotCheckStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, store)
    }

    fn token(byte: u8) -> U256 {
        U256::from_be_bytes([byte; 32])
    }

    fn checker(byte: u8) -> Address {
        Address::repeat_byte(byte)
    }

    fn within(store: &SpotCheckStore, check: &SpotCheck, limit: usize) {
        store.db.run_now(|conn| record_within(conn, check, limit)).unwrap();
    }

    #[tokio::test]
    async fn one_check_per_token_and_checker_and_the_newest_wins() {
        let (_dir, store) = store();
        assert!(store.record(check(0xaa, 0xbb, 10)).await.unwrap());
        assert!(store.record(check(0xaa, 0xcc, 5)).await.unwrap());
        assert!(!store.record(check(0xaa, 0xbb, 9)).await.unwrap(), "an older check replaced a newer one");
        let mismatch = SpotCheck {
            regenerated_pixel_digest: format!("0x{}", "55".repeat(32)),
            outcome: Outcome::Mismatch,
            ..check(0xaa, 0xbb, 11)
        };
        assert!(store.record(mismatch.clone()).await.unwrap());
        // Checks arrive with upper-case hex; lookups by typed ids find them.
        assert_eq!(store.of_token(token(0xaa)).await.unwrap(), vec![check(0xaa, 0xcc, 5), mismatch]);
        assert!(store.has_check(token(0xaa), checker(0xbb)).await.unwrap());
        assert!(!store.has_check(token(0xaa), checker(0xdd)).await.unwrap());
        assert!(store.of_token(token(0x01)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn past_the_bound_the_least_recently_written_checks_go() {
        let (_dir, store) = store();
        for token in 1..=3 {
            within(&store, &check(token, 0xbb, 1), 3);
        }
        // Rewriting token 1's check makes it the most recently written: token 2's goes first.
        within(&store, &check(1, 0xbb, 2), 3);
        within(&store, &check(4, 0xbb, 1), 3);
        let mut held = Vec::new();
        for byte in 1..=4 {
            if !store.of_token(token(byte)).await.unwrap().is_empty() {
                held.push(byte);
            }
        }
        assert_eq!(held, vec![1, 3, 4]);
    }

    #[tokio::test]
    async fn checks_survive_a_reopen_and_a_store_from_before_spot_checks_gains_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, signed_request TEXT NOT NULL,
             created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, pixel_digest TEXT, image_cid TEXT,
             metadata_cid TEXT, node_signature TEXT, tx_hash TEXT, token_id TEXT, error TEXT);",
        )
        .unwrap();
        drop(old);
        SpotCheckStore::open(&path).unwrap().record(check(7, 8, 9)).await.unwrap();
        let reopened = SpotCheckStore::open(&path).unwrap();
        assert_eq!(reopened.of_token(token(7)).await.unwrap(), vec![check(7, 8, 9)]);
    }
}
