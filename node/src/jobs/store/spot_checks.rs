//! Spot checks of tokens, this node's own and its peers': one row per token and checker (a newer
//! check replaces an older one), at most [`MAX_SPOT_CHECKS`] rows (the least recently written go
//! first). Each row keeps the signed check as it arrived, so it can be shown and verified again.

use genmint_p2p::spot_check::SpotCheck;
use rusqlite::params;

use super::{JobStore, StoreError};

/// The most spot checks kept.
pub const MAX_SPOT_CHECKS: usize = 10_000;

impl JobStore {
    /// Keeps `check` as its checker's word on its token, unless a newer check by the same checker is
    /// held. Returns whether it was kept.
    pub fn record_spot_check(&self, check: &SpotCheck) -> Result<bool, StoreError> {
        self.record_spot_check_within(check, MAX_SPOT_CHECKS)
    }

    fn record_spot_check_within(&self, check: &SpotCheck, limit: usize) -> Result<bool, StoreError> {
        let json = serde_json::to_string(check).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let checked_at = i64::try_from(check.checked_at).unwrap_or(i64::MAX);
        let mut conn = self.conn();
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

    /// The checks held for a token (0x-hex id), oldest first.
    pub fn spot_checks_of(&self, token_id: &str) -> Result<Vec<SpotCheck>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT spot_check FROM spot_checks WHERE token_id = ?1 ORDER BY checked_at, checker")?;
        let rows = statement
            .query_map(params![token_id.to_lowercase()], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("spot check: {e}")))
            })
            .collect()
    }

    /// Whether `checker` (an operator address) has a check of the token on record.
    pub fn has_spot_check(&self, token_id: &str, checker: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        let held: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM spot_checks WHERE token_id = ?1 AND checker = ?2",
            params![token_id.to_lowercase(), checker.to_lowercase()],
            |row| row.get(0),
        )?;
        Ok(held)
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
        }
    }

    fn store() -> (tempfile::TempDir, JobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn one_check_per_token_and_checker_and_the_newest_wins() {
        let (_dir, store) = store();
        let token = check(0xaa, 0xbb, 0).token_id;
        assert!(store.record_spot_check(&check(0xaa, 0xbb, 10)).unwrap());
        assert!(store.record_spot_check(&check(0xaa, 0xcc, 5)).unwrap());
        assert!(
            !store.record_spot_check(&check(0xaa, 0xbb, 9)).unwrap(),
            "an older check replaced a newer one"
        );
        let mismatch = SpotCheck {
            regenerated_pixel_digest: format!("0x{}", "55".repeat(32)),
            outcome: Outcome::Mismatch,
            ..check(0xaa, 0xbb, 11)
        };
        assert!(store.record_spot_check(&mismatch).unwrap());
        // Lookups ignore the case of hex ids and addresses.
        let held = store.spot_checks_of(&token.to_uppercase().replace("0X", "0x")).unwrap();
        assert_eq!(held, vec![check(0xaa, 0xcc, 5), mismatch]);
        assert!(store.has_spot_check(&token, &check(0, 0xbb, 0).checker.to_lowercase()).unwrap());
        assert!(!store.has_spot_check(&token, &format!("0x{}", "dd".repeat(20))).unwrap());
        assert!(store.spot_checks_of(&check(0x01, 0xbb, 0).token_id).unwrap().is_empty());
    }

    #[test]
    fn past_the_bound_the_least_recently_written_checks_go() {
        let (_dir, store) = store();
        for token in 1..=3 {
            store.record_spot_check_within(&check(token, 0xbb, 1), 3).unwrap();
        }
        // Rewriting token 1's check makes it the most recently written: token 2's goes first.
        store.record_spot_check_within(&check(1, 0xbb, 2), 3).unwrap();
        store.record_spot_check_within(&check(4, 0xbb, 1), 3).unwrap();
        let held: Vec<u8> = (1..=4)
            .filter(|token| !store.spot_checks_of(&check(*token, 0, 0).token_id).unwrap().is_empty())
            .collect();
        assert_eq!(held, vec![1, 3, 4]);
    }

    #[test]
    fn checks_survive_a_reopen_and_a_store_from_before_spot_checks_gains_the_table() {
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
        JobStore::open(&path).unwrap().record_spot_check(&check(7, 8, 9)).unwrap();
        let reopened = JobStore::open(&path).unwrap();
        assert_eq!(reopened.spot_checks_of(&check(7, 8, 9).token_id).unwrap(), vec![check(7, 8, 9)]);
    }
}
