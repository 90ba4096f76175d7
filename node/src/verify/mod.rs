//! End-to-end verification of one token, for buyers, marketplaces and peer nodes:
//! chain record and mint event ⇄ tokenURI metadata ⇄ image and metadata bytes (CIDs recomputed
//! here) ⇄ pixel digest ⇄ the image's C2PA manifest ⇄ creator signature ⇄ node attestation ⇄ the
//! contract's own ERC-7007 `verify` ⇄ node and model registries as of the mint block.
//!
//! Where each field is proven: the contract stores the creator, the node, the mint block and the
//! metadata CID; the token id is the request's EIP-712 digest, so the request in the metadata is the
//! minted one exactly when it hashes to the id (and its ABI encoding hashes to the event's prompt
//! topic); the mint's `AigcData` event carries the pixel digest, the image CID and both signatures.
//!
//! [`verify_token`] runs every check it can and reports each by name with its outcome; a check
//! whose inputs an earlier failure made unavailable is reported as failed with that reason, so a
//! report always lists the same checks. `subject` finds the token an IPFS CID or an image file
//! belongs to; `regenerate` adds the optional re-generation check.

mod content_credentials;
pub mod regenerate;
pub mod subject;

use alloy::primitives::{Address, B256, U256, keccak256};
use genmint_model_runtime::Rgb8Image;
use serde::Serialize;

use crate::chain::{ChainClient, MintedEvent, Provenance};
use crate::ipfs::{Cid, ContentStore};
use crate::provenance::eip712::{
    Attestation, GenerationRequest, SignedRequest, recover_attestation_signer, recover_request_signer,
    request_digest,
};
use crate::provenance::metadata::TokenMetadata;
use crate::provenance::png;

/// The largest metadata file verification downloads.
pub const MAX_METADATA_BYTES: usize = 1 << 20;
/// The largest image verification downloads.
pub const MAX_IMAGE_BYTES: usize = 64 << 20;

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Every check run for one token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub token_id: String,
    pub chain_id: u64,
    pub contract: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds a check's outcome; the report is ok only while every check is.
    pub fn push(&mut self, name: &'static str, result: Result<String, String>) {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.checks.push(Check { name, ok, detail });
        self.ok &= ok;
    }
}

/// What verification read on the way, for checks that build on it (re-generation).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The minted request, when the metadata's request is the one the token id commits to.
    pub request: Option<GenerationRequest>,
    pub metadata: Option<TokenMetadata>,
    /// The pixel digest the node attested in the mint event.
    pub pixel_digest: Option<B256>,
    /// The decoded image fetched from IPFS.
    pub image: Option<Rgb8Image>,
    /// The pinned metadata and image, as the chain names them.
    pub metadata_cid: Option<String>,
    pub image_cid: Option<String>,
}

/// The checks in the order they run; every report lists all of them.
pub const CHECKS: [&str; 12] = [
    "token",
    "metadata_cid",
    "metadata",
    "request",
    "creator_signature",
    "image_cid",
    "pixel_digest",
    "content_credentials",
    "node_attestation",
    "contract_verify",
    "node_registry",
    "model_registry",
];

fn hex_b256(b: &B256) -> String {
    b.to_string()
}

/// Reads a token id as people write it: decimal, or 0x-hex (the request digest).
pub fn parse_token_id(text: &str) -> Result<U256, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(text, 10),
    };
    parsed.map_err(|_| format!("{text:?} is not a token id (decimal, or 0x-hex)"))
}

/// Verifies one token against the chain and a content store.
pub async fn verify_token(chain: &ChainClient, ipfs: &impl ContentStore, token_id: U256) -> Report {
    inspect(chain, ipfs, token_id).await.0
}

/// Verifies one token and returns what it read along the way.
pub async fn inspect(chain: &ChainClient, ipfs: &impl ContentStore, token_id: U256) -> (Report, Evidence) {
    let mut evidence = Evidence::default();
    let mut report = Report {
        token_id: hex_b256(&B256::from(token_id.to_be_bytes::<32>())),
        chain_id: chain.chain_id(),
        contract: chain.address().to_checksum(None),
        ok: true,
        checks: Vec::new(),
    };
    let record = match chain_record(chain, token_id).await {
        Ok((record, event, owner)) => {
            report.push(
                "token",
                Ok(format!(
                    "owned by {owner}, minted in block {} by node {}",
                    record.mint_block, record.node
                )),
            );
            Some((record, event))
        }
        Err(e) => {
            report.push("token", Err(e));
            None
        }
    };
    let Some((record, event)) = record else {
        skip_rest(&mut report, "the token has no chain record");
        return (report, evidence);
    };
    evidence.pixel_digest = Some(event.pixel_digest);
    evidence.metadata_cid = Some(record.metadata_cid.clone());
    evidence.image_cid = Some(event.image_cid.clone());

    // Metadata: its bytes hash to the CID the chain holds, it parses, and its fields agree with the
    // chain, the mint event and the request it carries.
    let token_hex = B256::from(token_id.to_be_bytes::<32>());
    let metadata = match fetch(ipfs, &record.metadata_cid, MAX_METADATA_BYTES).await {
        Ok(bytes) => {
            report.push(
                "metadata_cid",
                Ok(format!("{} matches the bytes fetched from IPFS", record.metadata_cid)),
            );
            match serde_json::from_slice::<TokenMetadata>(&bytes) {
                Ok(metadata) => {
                    let facts = ChainFacts {
                        chain_id: chain.chain_id(),
                        contract: chain.address(),
                        token_id: token_hex,
                    };
                    report.push("metadata", metadata_agrees(&metadata, &facts, &record, &event));
                    Some(metadata)
                }
                Err(e) => {
                    report.push("metadata", Err(format!("not genmint metadata JSON: {e}")));
                    None
                }
            }
        }
        Err(e) => {
            report.push("metadata_cid", Err(e));
            report.push("metadata", Err("no metadata to read".into()));
            None
        }
    };

    // The creator's request: digest = token id, fields agree with the chain, signature is the creator's.
    let domain = chain.domain();
    let signed: Option<SignedRequest> = metadata.as_ref().and_then(|m| {
        Some(SignedRequest {
            request: serde_json::from_value(m.provenance.request.clone()).ok()?,
            signature: m.provenance.creator_signature.parse().ok()?,
        })
    });
    match &signed {
        Some(signed) => {
            let digest = request_digest(&signed.request, &domain);
            let request = &signed.request;
            let result = if U256::from_be_bytes(digest.0) != token_id {
                Err(format!("the metadata's request hashes to {digest}, not to the token id"))
            } else if request.creator != record.creator {
                Err(format!(
                    "the metadata's request is by {}, but the chain records the creator {}",
                    request.creator, record.creator
                ))
            } else if keccak256(crate::chain::abi_encode_request(request)) != event.prompt_hash {
                Err("the metadata's request is not the prompt of the mint event".into())
            } else {
                evidence.request = Some(request.clone());
                Ok(format!(
                    "request digest {digest} is the token id and the mint event's prompt; the creator matches the chain"
                ))
            };
            report.push("request", result);
            let result = match recover_request_signer(request, &event.creator_signature, &domain) {
                Ok(signer) if signer == record.creator && event.creator_signature == signed.signature => {
                    Ok(format!("signed by the creator {signer}"))
                }
                Ok(signer) if signer == record.creator => {
                    Err("the metadata carries a different creator signature than the chain".into())
                }
                Ok(signer) => Err(format!("signed by {signer}, not by the creator {}", record.creator)),
                Err(e) => Err(e.to_string()),
            };
            report.push("creator_signature", result);
        }
        None => {
            report.push("request", Err("the metadata holds no readable signed request".into()));
            report.push("creator_signature", Err("no request to check".into()));
        }
    }
    let model_hash = signed.as_ref().map(|s| s.request.modelHash);

    // The image: bytes hash to the CID, pixels hash to the attested pixel digest, and its C2PA
    // manifest names this token and is signed by a certificate the node's operator bound.
    match fetch(ipfs, &event.image_cid, MAX_IMAGE_BYTES).await {
        Ok(bytes) => {
            report.push("image_cid", Ok(format!("{} matches the bytes fetched from IPFS", event.image_cid)));
            let result = match png::decode(&bytes) {
                Ok(image) => {
                    let digest = B256::from(image.pixel_digest());
                    let result = if digest == event.pixel_digest {
                        Ok(format!("{}x{} pixels hash to {digest}", image.width, image.height))
                    } else {
                        Err(format!("pixels hash to {digest}, but the node attested {}", event.pixel_digest))
                    };
                    evidence.image = Some(image);
                    result
                }
                Err(e) => Err(e.to_string()),
            };
            report.push("pixel_digest", result);
            let expected = content_credentials::Expected {
                chain: ChainFacts {
                    chain_id: chain.chain_id(),
                    contract: chain.address(),
                    token_id: token_hex,
                },
                model_hash,
                pixel_digest: event.pixel_digest,
                node: record.node,
            };
            report.push("content_credentials", content_credentials::check(&bytes, &expected));
        }
        Err(e) => {
            report.push("image_cid", Err(e));
            report.push("pixel_digest", Err("no image to hash".into()));
            report.push("content_credentials", Err("no image to read".into()));
        }
    }

    // The node's attestation, rebuilt from the chain record, the event and the request; then the
    // contract's own check of the same data, and the registries as of the mint block.
    let result = match model_hash {
        Some(model_hash) => {
            let attestation = Attestation {
                requestDigest: token_hex,
                modelHash: model_hash,
                pixelDigest: event.pixel_digest,
                imageCid: event.image_cid.clone(),
                metadataCid: record.metadata_cid.clone(),
                node: record.node,
            };
            match recover_attestation_signer(&attestation, &event.node_signature, &domain) {
                Ok(signer) if signer == record.node => Ok(format!("attested by node {signer}")),
                Ok(signer) => Err(format!("attestation signed by {signer}, not by the node {}", record.node)),
                Err(e) => Err(e.to_string()),
            }
        }
        None => Err("no request to read the model hash from".into()),
    };
    report.push("node_attestation", result);
    let result = match &signed {
        Some(signed) => match chain.verify_aigc(&signed.request, &event.aigc_data, &event.proof).await {
            Ok(true) => {
                Ok("the contract's ERC-7007 verify accepts the request, outputs and signatures".into())
            }
            Ok(false) => {
                Err("the contract's ERC-7007 verify refuses the request, outputs and signatures".into())
            }
            Err(e) => Err(e.to_string()),
        },
        None => Err("no request to give the contract".into()),
    };
    report.push("contract_verify", result);
    report.push("node_registry", node_registry(chain, record.node, record.mint_block).await);
    let result = match model_hash {
        Some(model_hash) => model_registry(chain, model_hash, record.mint_block).await,
        None => Err("no request to read the model hash from".into()),
    };
    report.push("model_registry", result);
    evidence.metadata = metadata;
    (report, evidence)
}

/// What the chain itself fixes about a token, for comparing with what files claim.
#[derive(Debug, Clone, Copy)]
struct ChainFacts {
    chain_id: u64,
    contract: Address,
    /// The token id as 32 bytes: the request digest.
    token_id: B256,
}

/// Every field of the metadata that the chain, the mint event or the metadata's own request fixes;
/// names each one that disagrees.
fn metadata_agrees(
    metadata: &TokenMetadata,
    facts: &ChainFacts,
    record: &Provenance,
    event: &MintedEvent,
) -> Result<String, String> {
    let p = &metadata.provenance;
    let image_uri = format!("ipfs://{}", event.image_cid);
    let request: Option<GenerationRequest> = serde_json::from_value(p.request.clone()).ok();
    let same_b256 = |text: &str, want: &B256| text.parse::<B256>().is_ok_and(|v| v == *want);
    let same_address = |text: &str, want: &Address| text.parse::<Address>().is_ok_and(|v| v == *want);
    let mut wrong = Vec::new();
    let mut expect = |field: &str, ok: bool, found: String, want: String| {
        if !ok {
            wrong.push(format!("{field} is {found}, not {want}"));
        }
    };
    expect("image", metadata.image == image_uri, metadata.image.clone(), image_uri.clone());
    expect("aigc_data", metadata.aigc_data == image_uri, metadata.aigc_data.clone(), image_uri.clone());
    expect(
        "provenance.imageCid",
        p.image_cid == event.image_cid,
        p.image_cid.clone(),
        event.image_cid.clone(),
    );
    expect(
        "provenance.pixelDigest",
        same_b256(&p.pixel_digest, &event.pixel_digest),
        p.pixel_digest.clone(),
        event.pixel_digest.to_string(),
    );
    expect(
        "provenance.requestDigest",
        same_b256(&p.request_digest, &facts.token_id),
        p.request_digest.clone(),
        facts.token_id.to_string(),
    );
    expect(
        "provenance.chainId",
        p.chain_id == facts.chain_id,
        p.chain_id.to_string(),
        facts.chain_id.to_string(),
    );
    expect(
        "provenance.contract",
        same_address(&p.contract, &facts.contract),
        p.contract.clone(),
        facts.contract.to_string(),
    );
    expect("provenance.node", same_address(&p.node, &record.node), p.node.clone(), record.node.to_string());
    if let Some(request) = &request {
        expect(
            "prompt",
            metadata.prompt == request.prompt,
            format!("{:?}", metadata.prompt),
            format!("{:?}", request.prompt),
        );
        expect(
            "provenance.modelHash",
            same_b256(&p.model_hash, &request.modelHash),
            p.model_hash.clone(),
            request.modelHash.to_string(),
        );
        expect(
            "provenance.width/height",
            (p.width, p.height) == (request.width, request.height),
            format!("{}x{}", p.width, p.height),
            format!("{}x{}", request.width, request.height),
        );
    }
    if wrong.is_empty() {
        Ok(format!(
            "every field agrees with the chain record, the mint event and the signed request; image {image_uri}"
        ))
    } else {
        Err(format!("the metadata disagrees: {}", wrong.join("; ")))
    }
}

/// The node was registered when it minted; a later deactivation fails the check too, since the
/// registry owner took the node off for a reason.
async fn node_registry(chain: &ChainClient, node: Address, mint_block: u64) -> Result<String, String> {
    let then = chain.is_node_at(node, Some(mint_block)).await.map_err(|e| e.to_string())?;
    let now = chain.is_node(node).await.map_err(|e| e.to_string())?;
    registry_outcome(format!("node {node}"), then, now, mint_block)
}

/// The model was registered and active at the mint block, and has not been deactivated since.
async fn model_registry(chain: &ChainClient, model_hash: B256, mint_block: u64) -> Result<String, String> {
    let then = chain.model_info_at(model_hash, Some(mint_block)).await.map_err(|e| e.to_string())?;
    let now = chain.model_info(model_hash).await.map_err(|e| e.to_string())?;
    registry_outcome(
        format!("model {model_hash} ({} by {})", then.name, then.author),
        then.active,
        now.active,
        mint_block,
    )
}

fn registry_outcome(entry: String, then: bool, now: bool, mint_block: u64) -> Result<String, String> {
    match (then, now) {
        (true, true) => {
            Ok(format!("{entry} was registered and active at the mint block {mint_block} and still is"))
        }
        (true, false) => Err(format!(
            "{entry} was registered and active at the mint block {mint_block} but has been deactivated since"
        )),
        (false, _) => Err(format!("{entry} was not registered and active at the mint block {mint_block}")),
    }
}

async fn chain_record(
    chain: &ChainClient,
    token_id: U256,
) -> Result<(Provenance, MintedEvent, alloy::primitives::Address), String> {
    let owner =
        chain.owner_of(token_id).await.map_err(|e| e.to_string())?.ok_or("no such token on this contract")?;
    let record = chain
        .provenance(token_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the token has no provenance record")?;
    let event = chain
        .minted_event(token_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no AigcData event for the token")?;
    Ok((record, event, owner))
}

/// Why the bytes behind a CID could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{cid:?} is not a CID genmint reads: {reason}")]
    BadCid { cid: String, reason: String },
    /// Kubo did not deliver (unreachable, timed out, too large): may pass.
    #[error(transparent)]
    Ipfs(#[from] crate::ipfs::IpfsError),
    #[error("the bytes fetched for {cid} hash to {recomputed}")]
    Mismatch { cid: String, recomputed: String },
}

/// The bytes behind `cid` (at most `max_bytes`), accepted only if they hash to it here.
pub async fn fetch_checked(
    ipfs: &impl ContentStore,
    cid: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let bad_cid = |reason: String| FetchError::BadCid { cid: cid.to_owned(), reason };
    let parsed: Cid = cid.parse().map_err(|e: crate::ipfs::CidParseError| bad_cid(e.to_string()))?;
    let bytes = ipfs.cat(&parsed, max_bytes).await?;
    let recomputed =
        crate::ipfs::ImportProfile::UNIXFS_V1_2025.cid_of(&bytes).map_err(|e| bad_cid(e.to_string()))?;
    if recomputed == parsed {
        Ok(bytes)
    } else {
        Err(FetchError::Mismatch { cid: cid.to_owned(), recomputed: recomputed.to_string() })
    }
}

async fn fetch(ipfs: &impl ContentStore, cid: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    fetch_checked(ipfs, cid, max_bytes).await.map_err(|e| e.to_string())
}

fn skip_rest(report: &mut Report, reason: &str) {
    for name in CHECKS.iter().skip(report.checks.len()) {
        report.push(name, Err(reason.to_owned()));
    }
}
