//! The gallery's tables in the node's database: one row per minted token, keyed by token id and
//! ordered by where its mint lies on chain, and the next block the indexer reads. A pass of the
//! indexer writes its tokens and its new next block in one transaction, so a restart resumes
//! exactly where the last pass ended. Beside them, each token's perceptual fingerprint (the dHash
//! of its pinned image), so a copy whose watermark is gone can still be matched to its token.

use alloy::primitives::{Address, U256};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{GalleryCursor, GalleryPage, GalleryToken, MAX_PAGE, TokenQuery};
use crate::db::{Database, DbError};
use crate::provenance::ids::JobId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gallery_tokens (
    token_id     TEXT PRIMARY KEY,
    block_number INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    tx_hash      TEXT NOT NULL,
    creator      TEXT NOT NULL,
    node         TEXT NOT NULL,
    image_cid    TEXT,
    metadata_cid TEXT,
    model_hash   TEXT,
    model_name   TEXT,
    prompt       TEXT
);
CREATE INDEX IF NOT EXISTS gallery_tokens_order ON gallery_tokens(block_number, log_index);
CREATE INDEX IF NOT EXISTS gallery_tokens_creator ON gallery_tokens(creator, block_number);
CREATE INDEX IF NOT EXISTS gallery_tokens_model ON gallery_tokens(model_hash, block_number);
CREATE TABLE IF NOT EXISTS gallery_fingerprints (
    token_id TEXT PRIMARY KEY,
    dhash    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_progress (
    id         INTEGER PRIMARY KEY CHECK (id = 0),
    next_block INTEGER NOT NULL
);
";

const COLUMNS: &str = "token_id, block_number, log_index, tx_hash, creator, node, image_cid, metadata_cid, \
                       model_hash, model_name, prompt";

#[derive(Debug, thiserror::Error)]
pub enum GalleryStoreError {
    #[error("gallery store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("gallery store: {0}")]
    Db(#[from] DbError),
    #[error("the gallery store holds an unreadable {column}: {detail}; delete its tables to index again")]
    Corrupt { column: &'static str, detail: String },
}

/// The gallery store; cheap to clone.
#[derive(Clone)]
pub struct GalleryStore {
    db: Database,
}

/// Addresses are keyed lowercase, so a filter matches whatever case it is given in.
fn address_key(address: Address) -> String {
    format!("{address:#x}")
}

fn parse<T: std::str::FromStr>(column: &'static str, text: &str) -> Result<T, GalleryStoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| GalleryStoreError::Corrupt { column, detail: e.to_string() })
}

fn parse_some<T: std::str::FromStr>(
    column: &'static str,
    text: Option<String>,
) -> Result<Option<T>, GalleryStoreError>
where
    T::Err: std::fmt::Display,
{
    text.map(|text| parse(column, &text)).transpose()
}

type RawRow = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn token(
    (id, block, log, tx, creator, node, image, metadata, model, model_name, prompt): RawRow,
) -> Result<GalleryToken, GalleryStoreError> {
    let id: JobId = parse("token_id", &id)?;
    Ok(GalleryToken {
        id,
        token_id: id.token_id(),
        block_number: u64::try_from(block).unwrap_or_default(),
        log_index: u64::try_from(log).unwrap_or_default(),
        tx_hash: parse("tx_hash", &tx)?,
        creator: parse("creator", &creator)?,
        node: parse("node", &node)?,
        image_cid: parse_some("image_cid", image)?,
        metadata_cid: parse_some("metadata_cid", metadata)?,
        model_hash: parse_some("model_hash", model)?,
        model_name,
        prompt,
        fingerprint: None,
    })
}

fn insert(conn: &Connection, token: &GalleryToken) -> rusqlite::Result<usize> {
    conn.execute(
        &format!("INSERT OR REPLACE INTO gallery_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![
            token.id.to_string(),
            i64::try_from(token.block_number).unwrap_or(i64::MAX),
            i64::try_from(token.log_index).unwrap_or(i64::MAX),
            token.tx_hash.to_string(),
            address_key(token.creator),
            address_key(token.node),
            token.image_cid.as_ref().map(ToString::to_string),
            token.metadata_cid.as_ref().map(ToString::to_string),
            token.model_hash.as_ref().map(ToString::to_string),
            token.model_name,
            token.prompt,
        ],
    )
}

impl GalleryStore {
    /// The store in `db`, its tables created if missing. Blocks: call it off the async threads.
    pub fn new(db: Database) -> Result<Self, GalleryStoreError> {
        db.run_now(|conn| conn.execute_batch(SCHEMA))?;
        Ok(Self { db })
    }

    /// The first block the indexer has not read yet (0 before the first pass).
    pub async fn next_block(&self) -> Result<u64, GalleryStoreError> {
        self.db
            .run(|conn| {
                let next: Option<i64> = conn
                    .query_row("SELECT next_block FROM gallery_progress WHERE id = 0", [], |row| row.get(0))
                    .optional()?;
                Ok(next.map_or(0, |n| u64::try_from(n).unwrap_or_default()))
            })
            .await
    }

    /// Stores the tokens a pass found and the block the next pass starts at, together.
    pub async fn record(&self, tokens: Vec<GalleryToken>, next_block: u64) -> Result<(), GalleryStoreError> {
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                for token in &tokens {
                    insert(&tx, token)?;
                    if let Some(fingerprint) = token.fingerprint {
                        tx.execute(
                            "INSERT OR REPLACE INTO gallery_fingerprints (token_id, dhash) VALUES (?1, ?2)",
                            params![token.id.to_string(), fingerprint as i64],
                        )?;
                    }
                }
                tx.execute(
                    "INSERT INTO gallery_progress (id, next_block) VALUES (0, ?1) \
                     ON CONFLICT(id) DO UPDATE SET next_block = excluded.next_block",
                    [i64::try_from(next_block).unwrap_or(i64::MAX)],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// One token, if the gallery has it.
    pub async fn token(&self, token_id: U256) -> Result<Option<GalleryToken>, GalleryStoreError> {
        let key = JobId::of_token(token_id).to_string();
        self.db
            .run(move |conn| {
                let sql = format!("SELECT {COLUMNS} FROM gallery_tokens WHERE token_id = ?1");
                conn.query_row(&sql, [key], raw).optional()?.map(token).transpose()
            })
            .await
    }

    /// The tokens whose pinned image's fingerprint is within `max_distance` bits of `fingerprint`,
    /// nearest first, at most `limit`. Reads every fingerprint: fine for the hundreds of thousands
    /// of tokens a contract holds (8 bytes each), not for billions.
    pub async fn nearest(
        &self,
        fingerprint: u64,
        max_distance: u32,
        limit: usize,
    ) -> Result<Vec<(JobId, u32)>, GalleryStoreError> {
        self.db
            .run(move |conn| {
                let mut statement = conn.prepare("SELECT token_id, dhash FROM gallery_fingerprints")?;
                let mut near = Vec::new();
                for row in
                    statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?
                {
                    let (id, dhash) = row?;
                    let distance = (fingerprint ^ dhash as u64).count_ones();
                    if distance <= max_distance {
                        near.push((parse::<JobId>("token_id", &id)?, distance));
                    }
                }
                near.sort_by_key(|&(id, distance)| (distance, id.to_string()));
                near.truncate(limit);
                Ok(near)
            })
            .await
    }

    /// The tokens `query` asks for, newest first, at most `query.limit` (1 to [`MAX_PAGE`]).
    pub async fn page(&self, query: TokenQuery) -> Result<GalleryPage, GalleryStoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        self.db
            .run(move |conn| {
                let after = query.after.unwrap_or(GalleryCursor { block_number: u64::MAX, log_index: u64::MAX });
                let sql = format!(
                    "SELECT {COLUMNS} FROM gallery_tokens \
                     WHERE (block_number, log_index) < (?1, ?2) \
                     AND (?3 IS NULL OR creator = ?3) AND (?4 IS NULL OR model_hash = ?4) AND (?5 IS NULL OR node = ?5) \
                     ORDER BY block_number DESC, log_index DESC LIMIT ?6"
                );
                let mut statement = conn.prepare(&sql)?;
                let rows = statement
                    .query_map(
                        params![
                            i64::try_from(after.block_number).unwrap_or(i64::MAX),
                            i64::try_from(after.log_index).unwrap_or(i64::MAX),
                            query.creator.map(address_key),
                            query.model.map(|m| m.to_string()),
                            query.node.map(address_key),
                            i64::try_from(limit + 1).unwrap_or(i64::MAX),
                        ],
                        raw,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut tokens = rows.into_iter().map(token).collect::<Result<Vec<_>, _>>()?;
                let more = tokens.len() > limit;
                tokens.truncate(limit);
                let next_cursor = more
                    .then(|| tokens.last())
                    .flatten()
                    .map(|last| GalleryCursor { block_number: last.block_number, log_index: last.log_index });
                Ok(GalleryPage { tokens, next_cursor })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;
    use genmint_model_runtime::ModelHash;

    use super::*;
    use crate::ipfs::Cid;
    use crate::provenance::ids::TxHash;

    fn store() -> (tempfile::TempDir, GalleryStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("jobs.sqlite")).unwrap();
        (dir, GalleryStore::new(db).unwrap())
    }

    fn minted(n: u8, block: u64, creator: u8, model: Option<u8>) -> GalleryToken {
        let id = JobId(B256::repeat_byte(n));
        GalleryToken {
            id,
            token_id: id.token_id(),
            block_number: block,
            log_index: u64::from(n),
            tx_hash: TxHash(B256::repeat_byte(0xee)),
            creator: Address::repeat_byte(creator),
            node: Address::repeat_byte(0x99),
            image_cid: Some(Cid::raw_sha256(&[n])),
            metadata_cid: None,
            model_hash: model.map(|m| ModelHash([m; 32])),
            model_name: model.map(|_| "genmint-emoji-32".into()),
            prompt: Some(format!("prompt {n}")),
            fingerprint: None,
        }
    }

    #[tokio::test]
    async fn finds_the_tokens_whose_fingerprint_is_near_nearest_first() {
        let (_dir, store) = store();
        let with = |n: u8, fingerprint: u64| GalleryToken {
            fingerprint: Some(fingerprint),
            ..minted(n, 1, 0xa1, None)
        };
        let far = 0xffff_ffff_0000_0000u64;
        let tokens = vec![with(1, 0b1011), with(2, 0b1000), with(3, far), minted(4, 1, 0xa1, None)];
        store.record(tokens.clone(), 2).await.unwrap();
        let near = store.nearest(0b1000, 10, 5).await.unwrap();
        assert_eq!(near, [(tokens[1].id, 0), (tokens[0].id, 2)]);
        assert_eq!(store.nearest(0b1000, 10, 1).await.unwrap(), [(tokens[1].id, 0)]);
        assert_eq!(store.nearest(!far, 10, 5).await.unwrap(), [], "64 bits apart from the third");
        // A fingerprint with the top bit set survives SQLite's signed integers.
        assert_eq!(store.nearest(far, 0, 5).await.unwrap(), [(tokens[2].id, 0)]);
    }

    #[tokio::test]
    async fn pages_newest_first_by_filter_and_resumes_from_the_recorded_block() {
        let (dir, store) = store();
        assert_eq!(store.next_block().await.unwrap(), 0);
        let tokens = vec![minted(1, 5, 0xa1, Some(7)), minted(2, 5, 0xa2, Some(7)), minted(3, 9, 0xa1, None)];
        store.record(tokens.clone(), 10).await.unwrap();
        // Reopened, as after a restart: the tokens and the next block are still there.
        let store = GalleryStore::new(Database::open(&dir.path().join("jobs.sqlite")).unwrap()).unwrap();
        assert_eq!(store.next_block().await.unwrap(), 10);
        let ids = |page: &GalleryPage| page.tokens.iter().map(|t| t.id).collect::<Vec<_>>();
        let first = store.page(TokenQuery { limit: 2, ..TokenQuery::default() }).await.unwrap();
        assert_eq!(ids(&first), [tokens[2].id, tokens[1].id]);
        let second = store
            .page(TokenQuery { limit: 2, after: first.next_cursor, ..TokenQuery::default() })
            .await
            .unwrap();
        assert_eq!((ids(&second), second.next_cursor), (vec![tokens[0].id], None));
        let mine = store.page(TokenQuery {
            creator: Some(Address::repeat_byte(0xa1)),
            limit: 10,
            ..TokenQuery::default()
        });
        assert_eq!(ids(&mine.await.unwrap()), [tokens[2].id, tokens[0].id]);
        let model =
            store.page(TokenQuery { model: Some(ModelHash([7; 32])), limit: 10, ..TokenQuery::default() });
        assert_eq!(ids(&model.await.unwrap()), [tokens[1].id, tokens[0].id]);
        assert_eq!(store.token(tokens[1].token_id).await.unwrap(), Some(tokens[1].clone()));
        assert_eq!(store.token(U256::from(1)).await.unwrap(), None);
    }
}
