//! What `genmint verify` was given — a token id, an IPFS CID or an image file — and the token it
//! belongs to. A CID or file adds the `subject` check: the given bytes are exactly the token's
//! pinned metadata or image.
//!
//! An image names its token in its C2PA manifest; an image without one is looked up by its CID in
//! the contract's mint events; any other image (a copy: re-encoded, resized, stripped) by the tag
//! of its invisible watermark, or, without one, by its fingerprint in a node's index; metadata
//! names its token by its request digest. The verification
//! that follows proves (or refutes) that claim: nothing here is trusted on its own.

use std::path::{Path, PathBuf};

use alloy::primitives::U256;

use genmint_model_runtime::Rgb8Image;

use super::copy::{self, Detected, FingerprintIndex};
use super::{Evidence, MAX_IMAGE_BYTES, TokenChain, fetch, parse_token_id};
use crate::ipfs::{Cid, ContentStore, ImportProfile};
use crate::provenance::credentials;
use crate::provenance::metadata::TokenMetadata;

/// The thing to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Token(U256),
    Cid(String),
    File(PathBuf),
}

impl Subject {
    /// Reads a token id (decimal or 0x-hex), an existing file's path, or an IPFS CID.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(token_id) = parse_token_id(text) {
            return Ok(Self::Token(token_id));
        }
        if Path::new(text).is_file() {
            return Ok(Self::File(text.into()));
        }
        let cid = text.strip_prefix("ipfs://").unwrap_or(text);
        match cid.parse::<Cid>() {
            Ok(_) => Ok(Self::Cid(cid.to_owned())),
            Err(_) => Err(format!(
                "{text:?} is neither a token id (decimal or 0x-hex), nor a file, nor an IPFS CID"
            )),
        }
    }
}

/// What the given bytes claim to be, checked once the token is verified.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A token id was given: nothing to check.
    None,
    Metadata {
        cid: String,
    },
    Image {
        cid: String,
    },
    /// Not a pinned file, but an image whose watermark names the token.
    Copy {
        cid: String,
        image: Rgb8Image,
        detected: Detected,
    },
}

impl Claim {
    /// The `subject` check, or `None` when a token id was given.
    pub fn check(&self, evidence: &Evidence) -> Option<Result<String, String>> {
        let (what, cid, pinned) = match self {
            Claim::None => return None,
            Claim::Copy { image, detected, .. } => {
                return Some(copy::likeness(image, detected, evidence.image.as_ref()));
            }
            Claim::Metadata { cid } => ("metadata", cid, evidence.metadata_cid.as_deref()),
            Claim::Image { cid } => ("image", cid, evidence.image_cid.as_deref()),
        };
        Some(match pinned {
            Some(pinned) if pinned == cid => {
                Ok(format!("the given bytes ({cid}) are the token's pinned {what}"))
            }
            Some(pinned) => Err(format!(
                "the given bytes hash to {cid}, but the token's {what} is {pinned}: they are not the minted file"
            )),
            None => Err(format!("the token's {what} CID is unknown")),
        })
    }
}

/// Finds the token a subject belongs to; mint events are searched from `from_block` on, and
/// `fingerprints` for a copy without a watermark.
pub async fn resolve(
    chain: &impl TokenChain,
    ipfs: &impl ContentStore,
    fingerprints: &impl FingerprintIndex,
    subject: &Subject,
    from_block: u64,
) -> Result<(U256, Claim), String> {
    let (bytes, cid) = match subject {
        Subject::Token(token_id) => return Ok((*token_id, Claim::None)),
        Subject::Cid(cid) => (fetch(ipfs, cid, MAX_IMAGE_BYTES).await?, cid.clone()),
        Subject::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let cid = ImportProfile::UNIXFS_V1_2025.cid_of(&bytes).map_err(|e| e.to_string())?.to_string();
            (bytes, cid)
        }
    };
    if let Ok(metadata) = serde_json::from_slice::<TokenMetadata>(&bytes) {
        let token_id = parse_token_id(&metadata.provenance.request_digest)
            .map_err(|e| format!("the metadata's requestDigest: {e}"))?;
        return Ok((token_id, Claim::Metadata { cid }));
    }
    let named = match credentials::read(&bytes) {
        Ok(Some(read)) => read.token.map(|token| U256::from_be_bytes(token.token_id.0)),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "no readable C2PA manifest; searching mint events");
            None
        }
    };
    if let Some(token_id) = named {
        return Ok((token_id, Claim::Image { cid }));
    }
    if let Some(token_id) = chain.token_by_image_cid(&cid, from_block).await.map_err(|e| e.to_string())? {
        return Ok((token_id, Claim::Image { cid }));
    }
    // Not a pinned file: perhaps a copy, found by its watermark.
    let image = copy::decode(&bytes).map_err(|e| {
        format!("{cid} is neither genmint metadata nor a minted image, nor a copy of one: {e}")
    })?;
    let detected = tokio::task::spawn_blocking({
        let image = image.clone();
        move || copy::detect(&image)
    })
    .await
    .map_err(|e| format!("looking for a watermark did not finish: {e}"))?;
    let Some(tag) = detected.tag() else {
        let nearest = fingerprints.nearest(detected.fingerprint().unwrap_or(0)).await;
        if let Some(best) = nearest.as_ref().ok().and_then(|matches| matches.first()) {
            let token_id =
                parse_token_id(&best.token_id).map_err(|e| format!("the fingerprint index: {e}"))?;
            return Ok((token_id, Claim::Copy { cid, image, detected }));
        }
        let index = match nearest {
            Ok(_) => "no token's image in the fingerprint index looks like it".to_owned(),
            Err(e) => format!("the fingerprint index could not be asked ({e})"),
        };
        return Err(format!(
            "{cid} is neither genmint metadata nor an image with genmint credentials, no mint event on this \
             contract names it, it carries no genmint watermark (confidence {:.2}) and {index}: verify by token id",
            detected.confidence
        ));
    };
    let token_id = chain.token_by_watermark(tag, from_block).await.map_err(|e| e.to_string())?.ok_or_else(|| {
        format!(
            "the image carries genmint watermark tag {tag}, but no token minted on this contract since block \
             {from_block} has that tag (another chain or contract?)"
        )
    })?;
    Ok((token_id, Claim::Copy { cid, image, detected }))
}
