//! The gallery: every token of the contract, read from the chain's mint events into the node's
//! database, and listed newest first, by creator, model or node, a page at a time.
//!
//! ```text
//! chain: AigcData events (block by block) ─► indexer ─► provenance(token): creator, node, metadata CID
//!                                                   ─► IPFS: the metadata's model and prompt,
//!                                                      the image's fingerprint (dHash)
//!                                                   ─► store: one row per token, and the next block to read
//! GET /v1/tokens?creator=&model=&node=&cursor=  ◄── store.page(query)
//! ```
//!
//! The indexer resumes from the block after the last one it stored (a restart loses nothing), and a
//! token whose metadata cannot be read is still listed, from what the chain says of it.

mod indexer;
mod store;

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, U256};
use genmint_model_runtime::ModelHash;
use serde::Serialize;

pub use indexer::{GalleryIndexer, INDEX_INTERVAL};
pub use store::{GalleryStore, GalleryStoreError};

use crate::ipfs::Cid;
use crate::provenance::ids::{JobId, TxHash};

/// The most tokens one page holds.
pub const MAX_PAGE: usize = 100;

/// A minted token as the gallery lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GalleryToken {
    /// The token id in hex (the request digest), as the token page's address uses it.
    pub id: JobId,
    #[serde(serialize_with = "as_text")]
    pub token_id: U256,
    pub block_number: u64,
    #[serde(skip)]
    pub log_index: u64,
    pub tx_hash: TxHash,
    pub creator: Address,
    pub node: Address,
    pub image_cid: Option<Cid>,
    pub metadata_cid: Option<Cid>,
    /// From the metadata; `None` while it cannot be read.
    pub model_hash: Option<ModelHash>,
    pub model_name: Option<String>,
    pub prompt: Option<String>,
    /// The dHash of the pinned image (`provenance::fingerprint`); `None` while it cannot be read.
    /// Kept in its own table: a page read does not carry it.
    #[serde(skip)]
    pub fingerprint: Option<u64>,
}

/// Where a page ends: the last token's block and place in it. Written `<block>.<log index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GalleryCursor {
    pub block_number: u64,
    pub log_index: u64,
}

impl fmt::Display for GalleryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.block_number, self.log_index)
    }
}

impl Serialize for GalleryCursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for GalleryCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unreadable = || format!("cursor {text:?} is not one a page gave (<block>.<log index>)");
        let (block, log) = text.split_once('.').ok_or_else(unreadable)?;
        Ok(Self {
            block_number: block.parse().map_err(|_| unreadable())?,
            log_index: log.parse().map_err(|_| unreadable())?,
        })
    }
}

/// Which tokens a page lists: all of them, or those of one creator, model or node (all that are
/// given); newest first, after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenQuery {
    pub creator: Option<Address>,
    pub model: Option<ModelHash>,
    pub node: Option<Address>,
    pub after: Option<GalleryCursor>,
    pub limit: usize,
}

/// One page of tokens, and the cursor of the next when there are more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GalleryPage {
    pub tokens: Vec<GalleryToken>,
    pub next_cursor: Option<GalleryCursor>,
}

/// uint256 as a decimal string: it does not fit a JSON number.
fn as_text<S: serde::Serializer>(value: &U256, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_writes_and_refuses_anything_else() {
        let cursor = GalleryCursor { block_number: 42, log_index: 3 };
        assert_eq!(cursor.to_string().parse::<GalleryCursor>(), Ok(cursor));
        for bad in ["", "42", "a.b", "1.2.3", "-1.0"] {
            let err = bad.parse::<GalleryCursor>().unwrap_err();
            assert!(err.contains("cursor"), "{bad}: {err}");
        }
    }
}
