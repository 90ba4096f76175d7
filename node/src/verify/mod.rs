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
//! [`verify_token`] runs every check it can and reports each by its [`CheckName`] with its outcome; a check
//! whose inputs an earlier failure made unavailable is reported as failed with that reason, so a
//! report always lists the same checks, in the order of [`CHECKS`]. The chain is read through
//! [`TokenChain`] (the product's is [`crate::chain::ChainClient`]) and files through a
//! [`ContentStore`], so the tests run every check against in-memory fakes. `subject` finds the
//! token an IPFS CID or an image file belongs to; `regenerate` adds the optional re-generation check.

mod chain;
mod content_credentials;
pub mod copy;
#[cfg(test)]
pub(crate) mod fake;
pub mod regenerate;
pub mod steps;
pub mod subject;
#[cfg(test)]
mod tests;
mod watermark;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::Eip712Domain;
use genmint_model_runtime::Rgb8Image;
use serde::Serialize;

pub use chain::TokenChain;

use crate::chain::{ChainError, DisputeStatus, MintedEvent, Provenance};
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

/// The name of a check, as reports print it and their JSON carries it (`"metadata_cid"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Token,
    MetadataCid,
    Metadata,
    Request,
    CreatorSignature,
    ImageCid,
    PixelDigest,
    /// The invisible watermark carries this token's tag (or the metadata says why there is none).
    Watermark,
    ContentCredentials,
    NodeAttestation,
    ContractVerify,
    NodeRegistry,
    ModelRegistry,
    /// No on-chain dispute found the token forged (open, rejected and undecided disputes say so).
    Dispute,
    /// `genmint verify` given a CID or a file: those bytes are the token's pinned metadata or image.
    Subject,
    /// `genmint verify --regenerate`.
    Regeneration,
    /// `genmint verify --steps K`: K random steps of the committed latent trace replayed.
    StepCheck,
}

impl CheckName {
    /// The name as reports print it; the same string serde writes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::MetadataCid => "metadata_cid",
            Self::Metadata => "metadata",
            Self::Request => "request",
            Self::CreatorSignature => "creator_signature",
            Self::ImageCid => "image_cid",
            Self::PixelDigest => "pixel_digest",
            Self::Watermark => "watermark",
            Self::ContentCredentials => "content_credentials",
            Self::NodeAttestation => "node_attestation",
            Self::ContractVerify => "contract_verify",
            Self::NodeRegistry => "node_registry",
            Self::ModelRegistry => "model_registry",
            Self::Dispute => "dispute",
            Self::Subject => "subject",
            Self::Regeneration => "regeneration",
            Self::StepCheck => "step_check",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: the CLI aligns its columns with `{:<19}`.
        f.pad(self.as_str())
    }
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: CheckName,
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
    pub fn push(&mut self, name: CheckName, result: Result<String, String>) {
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
pub const CHECKS: [CheckName; 14] = [
    CheckName::Token,
    CheckName::MetadataCid,
    CheckName::Metadata,
    CheckName::Request,
    CheckName::CreatorSignature,
    CheckName::ImageCid,
    CheckName::PixelDigest,
    CheckName::Watermark,
    CheckName::ContentCredentials,
    CheckName::NodeAttestation,
    CheckName::ContractVerify,
    CheckName::NodeRegistry,
    CheckName::ModelRegistry,
    CheckName::Dispute,
];

/// Why the attestation and model checks cannot run without a readable request.
const NO_MODEL_HASH: &str = "no request to read the model hash from";

/// Reads a token id as people write it: decimal, or 0x-hex (the request digest).
pub fn parse_token_id(text: &str) -> Result<U256, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(text, 10),
    };
    parsed.map_err(|_| format!("{text:?} is not a token id (decimal, or 0x-hex)"))
}

/// Verifies one token against the chain and a content store.
pub async fn verify_token(chain: &impl TokenChain, ipfs: &impl ContentStore, token_id: U256) -> Report {
    inspect(chain, ipfs, token_id).await.0
}

/// Verifies one token and returns what it read along the way.
pub async fn inspect(
    chain: &impl TokenChain,
    ipfs: &impl ContentStore,
    token_id: U256,
) -> (Report, Evidence) {
    let facts = ChainFacts {
        chain_id: chain.chain_id(),
        contract: chain.address(),
        token_id: B256::from(token_id.to_be_bytes::<32>()),
    };
    let mut report = Report {
        token_id: facts.token_id.to_string(),
        chain_id: facts.chain_id,
        contract: facts.contract.to_checksum(None),
        ok: true,
        checks: Vec::new(),
    };
    let mut evidence = Evidence::default();
    let Some(minted) = check_token(&mut report, chain, token_id, facts).await else {
        skip_rest(&mut report, "the token has no chain record");
        return (report, evidence);
    };
    evidence.pixel_digest = Some(minted.event.pixel_digest);
    evidence.metadata_cid = Some(minted.record.metadata_cid.clone());
    evidence.image_cid = Some(minted.event.image_cid.clone());

    let metadata = check_metadata(&mut report, ipfs, &minted).await;
    let signed = metadata.as_ref().and_then(signed_request);
    evidence.request = check_request(&mut report, &minted, signed.as_ref());
    let model_hash = signed.as_ref().map(|s| s.request.modelHash);
    let recorded = metadata.as_ref().and_then(|m| m.provenance.watermark.clone());
    evidence.image = check_image(&mut report, ipfs, &minted, model_hash, recorded.as_ref()).await;
    check_attestation(&mut report, chain, &minted, signed.as_ref()).await;
    check_registries(&mut report, chain, &minted, model_hash).await;
    report.push(CheckName::Dispute, dispute(chain, token_id).await);
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

/// A token as the chain records it: what every check after `token` compares the files with.
struct Minted {
    facts: ChainFacts,
    domain: Eip712Domain,
    record: Provenance,
    event: MintedEvent,
}

/// `token`: the token exists, with an owner, a stored record and a mint event.
async fn check_token(
    report: &mut Report,
    chain: &impl TokenChain,
    token_id: U256,
    facts: ChainFacts,
) -> Option<Minted> {
    match chain_record(chain, token_id).await {
        Ok((record, event, owner)) => {
            report.push(
                CheckName::Token,
                Ok(format!(
                    "owned by {owner}, minted in block {} by node {}",
                    record.mint_block, record.node
                )),
            );
            Some(Minted { facts, domain: chain.domain(), record, event })
        }
        Err(e) => {
            report.push(CheckName::Token, Err(e));
            None
        }
    }
}

async fn chain_record(
    chain: &impl TokenChain,
    token_id: U256,
) -> Result<(Provenance, MintedEvent, Address), String> {
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

/// `metadata_cid` and `metadata`: the bytes behind the chain's metadata CID hash to it, parse, and
/// agree with the chain, the mint event and the request they carry.
async fn check_metadata(
    report: &mut Report,
    ipfs: &impl ContentStore,
    minted: &Minted,
) -> Option<TokenMetadata> {
    let cid = &minted.record.metadata_cid;
    let bytes = match fetch(ipfs, cid, MAX_METADATA_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            report.push(CheckName::MetadataCid, Err(e));
            report.push(CheckName::Metadata, Err("no metadata to read".into()));
            return None;
        }
    };
    report.push(CheckName::MetadataCid, Ok(format!("{cid} matches the bytes fetched from IPFS")));
    match serde_json::from_slice::<TokenMetadata>(&bytes) {
        Ok(metadata) => {
            report.push(CheckName::Metadata, metadata_agrees(&metadata, minted));
            Some(metadata)
        }
        Err(e) => {
            report.push(CheckName::Metadata, Err(format!("not genmint metadata JSON: {e}")));
            None
        }
    }
}

/// Every field of the metadata that the chain, the mint event or the metadata's own request fixes;
/// names each one that disagrees.
fn metadata_agrees(metadata: &TokenMetadata, minted: &Minted) -> Result<String, String> {
    let image_uri = format!("ipfs://{}", minted.event.image_cid);
    let mut wrong = Disagreements::default();
    chain_fields(&mut wrong, metadata, minted, &image_uri);
    if let Ok(request) = serde_json::from_value::<GenerationRequest>(metadata.provenance.request.clone()) {
        request_fields(&mut wrong, metadata, &request);
    }
    if wrong.0.is_empty() {
        Ok(format!(
            "every field agrees with the chain record, the mint event and the signed request; image {image_uri}"
        ))
    } else {
        Err(format!("the metadata disagrees: {}", wrong.0.join("; ")))
    }
}

/// The metadata fields found to disagree, each as "field is found, not want".
#[derive(Default)]
struct Disagreements(Vec<String>);

impl Disagreements {
    fn expect(&mut self, field: &str, ok: bool, found: String, want: String) {
        if !ok {
            self.0.push(format!("{field} is {found}, not {want}"));
        }
    }

    fn equal<T: PartialEq + fmt::Display + ?Sized>(&mut self, field: &str, found: &T, want: &T) {
        self.expect(field, found == want, found.to_string(), want.to_string());
    }

    /// A field the metadata writes as text: it must parse to `want`.
    fn parsed<T: FromStr + PartialEq + fmt::Display>(&mut self, field: &str, text: &str, want: &T) {
        let ok = text.parse::<T>().is_ok_and(|value| value == *want);
        self.expect(field, ok, text.to_owned(), want.to_string());
    }
}

/// The fields the chain record and the mint event fix.
fn chain_fields(wrong: &mut Disagreements, metadata: &TokenMetadata, minted: &Minted, image_uri: &str) {
    let (p, facts, record, event) = (&metadata.provenance, &minted.facts, &minted.record, &minted.event);
    wrong.equal("image", metadata.image.as_str(), image_uri);
    wrong.equal("aigc_data", metadata.aigc_data.as_str(), image_uri);
    wrong.equal("provenance.imageCid", &p.image_cid, &event.image_cid);
    wrong.parsed("provenance.pixelDigest", &p.pixel_digest, &event.pixel_digest);
    wrong.parsed("provenance.requestDigest", &p.request_digest, &facts.token_id);
    wrong.equal("provenance.chainId", &p.chain_id, &facts.chain_id);
    wrong.parsed("provenance.contract", &p.contract, &facts.contract);
    wrong.parsed("provenance.node", &p.node, &record.node);
}

/// The fields the metadata's own signed request fixes.
fn request_fields(wrong: &mut Disagreements, metadata: &TokenMetadata, request: &GenerationRequest) {
    let p = &metadata.provenance;
    let prompt = (&metadata.prompt, &request.prompt);
    wrong.expect("prompt", prompt.0 == prompt.1, format!("{:?}", prompt.0), format!("{:?}", prompt.1));
    wrong.parsed("provenance.modelHash", &p.model_hash, &request.modelHash);
    let (found, want) = ((p.width, p.height), (request.width, request.height));
    wrong.expect(
        "provenance.width/height",
        found == want,
        format!("{}x{}", found.0, found.1),
        format!("{}x{}", want.0, want.1),
    );
}

/// The signed request the metadata carries, when it is readable.
fn signed_request(metadata: &TokenMetadata) -> Option<SignedRequest> {
    Some(SignedRequest {
        request: serde_json::from_value(metadata.provenance.request.clone()).ok()?,
        signature: metadata.provenance.creator_signature.parse().ok()?,
    })
}

/// `request` and `creator_signature`: the metadata's request is the minted one and its creator
/// signed it. Returns the request once it is proven the minted one.
fn check_request(
    report: &mut Report,
    minted: &Minted,
    signed: Option<&SignedRequest>,
) -> Option<GenerationRequest> {
    let Some(signed) = signed else {
        report.push(CheckName::Request, Err("the metadata holds no readable signed request".into()));
        report.push(CheckName::CreatorSignature, Err("no request to check".into()));
        return None;
    };
    let result = request_is_minted(&signed.request, minted);
    let proven = result.is_ok().then(|| signed.request.clone());
    report.push(CheckName::Request, result);
    report.push(CheckName::CreatorSignature, creator_signature(signed, minted));
    proven
}

/// Its digest is the token id, its creator the chain's, and its ABI encoding the event's prompt.
fn request_is_minted(request: &GenerationRequest, minted: &Minted) -> Result<String, String> {
    let digest = request_digest(request, &minted.domain);
    let creator = minted.record.creator;
    if digest != minted.facts.token_id {
        Err(format!("the metadata's request hashes to {digest}, not to the token id"))
    } else if request.creator != creator {
        Err(format!(
            "the metadata's request is by {}, but the chain records the creator {creator}",
            request.creator
        ))
    } else if keccak256(crate::chain::abi_encode_request(request)) != minted.event.prompt_hash {
        Err("the metadata's request is not the prompt of the mint event".into())
    } else {
        Ok(format!(
            "request digest {digest} is the token id and the mint event's prompt; the creator matches the chain"
        ))
    }
}

/// The mint event's creator signature recovers to the chain's creator, and the metadata carries
/// the same signature.
fn creator_signature(signed: &SignedRequest, minted: &Minted) -> Result<String, String> {
    let (creator, on_chain) = (minted.record.creator, &minted.event.creator_signature);
    match recover_request_signer(&signed.request, on_chain, &minted.domain) {
        Ok(signer) if signer == creator && *on_chain == signed.signature => {
            Ok(format!("signed by the creator {signer}"))
        }
        Ok(signer) if signer == creator => {
            Err("the metadata carries a different creator signature than the chain".into())
        }
        Ok(signer) => Err(format!("signed by {signer}, not by the creator {creator}")),
        Err(e) => Err(e.to_string()),
    }
}

/// `image_cid`, `pixel_digest`, `watermark` and `content_credentials`: the image's bytes hash to
/// the event's CID, its pixels to the marked digest the metadata records (or, unmarked, to the
/// attested one), its watermark names this token, and its C2PA manifest names this token and is
/// signed by a certificate the node's operator bound. Returns the decoded image.
async fn check_image(
    report: &mut Report,
    ipfs: &impl ContentStore,
    minted: &Minted,
    model_hash: Option<B256>,
    recorded: Option<&crate::provenance::metadata::WatermarkRecord>,
) -> Option<Rgb8Image> {
    let event = &minted.event;
    let bytes = match fetch(ipfs, &event.image_cid, MAX_IMAGE_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            report.push(CheckName::ImageCid, Err(e));
            report.push(CheckName::PixelDigest, Err("no image to hash".into()));
            report.push(CheckName::Watermark, Err("no image to look into".into()));
            report.push(CheckName::ContentCredentials, Err("no image to read".into()));
            return None;
        }
    };
    report.push(CheckName::ImageCid, Ok(format!("{} matches the bytes fetched from IPFS", event.image_cid)));
    let expected = content_credentials::Expected {
        chain: minted.facts,
        model_hash,
        pixel_digest: event.pixel_digest,
        marked_pixel_digest: recorded.filter(|r| r.embedded).and_then(|r| r.marked_pixel_digest.parse().ok()),
        watermark_tag: recorded.filter(|r| r.embedded).map(|_| {
            crate::provenance::watermark::WatermarkTag::for_token(
                minted.facts.chain_id,
                minted.facts.contract,
                minted.facts.token_id,
            )
        }),
        node: minted.record.node,
    };
    // Decoding the PNG and reading its manifest are blocking work.
    let read = tokio::task::spawn_blocking(move || {
        (png::decode(&bytes), content_credentials::check(&bytes, &expected))
    });
    let (decoded, credentials) = match read.await {
        Ok(read) => read,
        Err(e) => {
            report.push(CheckName::PixelDigest, Err(format!("decoding the image did not finish: {e}")));
            report.push(CheckName::Watermark, Err(format!("decoding the image did not finish: {e}")));
            report.push(CheckName::ContentCredentials, Err(format!("reading the image did not finish: {e}")));
            return None;
        }
    };
    let image = match decoded {
        Ok(image) => {
            report.push(CheckName::PixelDigest, pixel_digest(&image, event.pixel_digest, recorded));
            report.push(CheckName::Watermark, watermark::check(&image, recorded, minted.facts));
            Some(image)
        }
        Err(e) => {
            report.push(CheckName::PixelDigest, Err(e.to_string()));
            report.push(CheckName::Watermark, Err("no pixels to look into".into()));
            None
        }
    };
    report.push(CheckName::ContentCredentials, credentials);
    image
}

fn pixel_digest(
    image: &Rgb8Image,
    attested: B256,
    recorded: Option<&crate::provenance::metadata::WatermarkRecord>,
) -> Result<String, String> {
    let digest = B256::from(image.pixel_digest());
    let (expected, what) = watermark::expected_digest(recorded, attested)?;
    if digest != expected {
        return Err(format!("pixels hash to {digest}, but {what} is {expected}"));
    }
    let (width, height) = (image.width, image.height);
    Ok(if expected == attested {
        format!("{width}x{height} pixels hash to {digest}, {what}")
    } else {
        format!(
            "{width}x{height} pixels hash to {digest}, {what}; the node attested the raw output's {attested} \
             (re-generation checks that one)"
        )
    })
}

/// `node_attestation` and `contract_verify`: the node signed the attestation rebuilt from the
/// chain record, the event and the request; then the contract's own check of the same data.
async fn check_attestation(
    report: &mut Report,
    chain: &impl TokenChain,
    minted: &Minted,
    signed: Option<&SignedRequest>,
) {
    let result = match signed {
        Some(signed) => node_attestation(minted, signed.request.modelHash),
        None => Err(NO_MODEL_HASH.into()),
    };
    report.push(CheckName::NodeAttestation, result);
    let result = match signed {
        Some(signed) => contract_verify(chain, &signed.request, &minted.event).await,
        None => Err("no request to give the contract".into()),
    };
    report.push(CheckName::ContractVerify, result);
}

fn node_attestation(minted: &Minted, model_hash: B256) -> Result<String, String> {
    let (record, event) = (&minted.record, &minted.event);
    let attestation = Attestation {
        requestDigest: minted.facts.token_id,
        modelHash: model_hash,
        pixelDigest: event.pixel_digest,
        imageCid: event.image_cid.clone(),
        metadataCid: record.metadata_cid.clone(),
        node: record.node,
    };
    match recover_attestation_signer(&attestation, &event.node_signature, &minted.domain) {
        Ok(signer) if signer == record.node => Ok(format!("attested by node {signer}")),
        Ok(signer) => Err(format!("attestation signed by {signer}, not by the node {}", record.node)),
        Err(e) => Err(e.to_string()),
    }
}

async fn contract_verify(
    chain: &impl TokenChain,
    request: &GenerationRequest,
    event: &MintedEvent,
) -> Result<String, String> {
    match chain.verify_aigc(request, &event.aigc_data, &event.proof).await {
        Ok(true) => Ok("the contract's ERC-7007 verify accepts the request, outputs and signatures".into()),
        Ok(false) => Err("the contract's ERC-7007 verify refuses the request, outputs and signatures".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `dispute`: fails once a dispute confirmed the token forged (the contract slashed its node and
/// marked it); an open dispute, a rejected one or none passes, saying which.
async fn dispute(chain: &impl TokenChain, token_id: U256) -> Result<String, String> {
    let d = chain.dispute_of(token_id).await.map_err(|e| e.to_string())?;
    match d.status {
        DisputeStatus::None => Ok("no dispute is open or decided".into()),
        DisputeStatus::Open => Ok(format!(
            "a dispute by {} is open until {} (unix seconds): {} re-check(s) confirm a forgery, {} reject it",
            d.challenger, d.deadline, d.confirmations, d.rejections
        )),
        DisputeStatus::Rejected => Ok(format!(
            "a dispute by {} was rejected: {} re-check(s) reproduced the attested pixels",
            d.challenger, d.rejections
        )),
        DisputeStatus::FraudConfirmed => Err(format!(
            "fraud confirmed on chain: {} re-check(s) reproduced the pixels of the dispute by {}, not the attested ones; the node was slashed and the token marked",
            d.confirmations, d.challenger
        )),
    }
}

/// `node_registry` and `model_registry`, each as of the mint block and now.
async fn check_registries(
    report: &mut Report,
    chain: &impl TokenChain,
    minted: &Minted,
    model_hash: Option<B256>,
) {
    let (node, mint_block) = (minted.record.node, minted.record.mint_block);
    report.push(CheckName::NodeRegistry, node_registry(chain, node, mint_block).await);
    let result = match model_hash {
        Some(model_hash) => model_registry(chain, model_hash, mint_block).await,
        None => Err(NO_MODEL_HASH.into()),
    };
    report.push(CheckName::ModelRegistry, result);
}

/// The node was registered when it minted; a later deactivation fails the check too, since the
/// registry owner took the node off for a reason.
async fn node_registry(chain: &impl TokenChain, node: Address, mint_block: u64) -> Result<String, String> {
    let (then, now) = then_and_now(|block| chain.is_node_at(node, block), mint_block).await?;
    registry_outcome(format!("node {node}"), then, now, mint_block)
}

/// The model was registered and active at the mint block, and has not been deactivated since.
async fn model_registry(
    chain: &impl TokenChain,
    model_hash: B256,
    mint_block: u64,
) -> Result<String, String> {
    let (then, now) = then_and_now(|block| chain.model_info_at(model_hash, block), mint_block).await?;
    let entry = format!("model {model_hash} ({} by {})", then.name, then.author);
    registry_outcome(entry, then.active, now.active, mint_block)
}

/// A registry read as of the mint block, then as of the latest block.
async fn then_and_now<T, F>(read: impl Fn(Option<u64>) -> F, mint_block: u64) -> Result<(T, T), String>
where
    F: Future<Output = Result<T, ChainError>>,
{
    let then = read(Some(mint_block)).await.map_err(|e| e.to_string())?;
    let now = read(None).await.map_err(|e| e.to_string())?;
    Ok((then, now))
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
    // Hashing up to `max_bytes` is blocking work.
    let (bytes, recomputed) = tokio::task::spawn_blocking(move || {
        let recomputed = crate::ipfs::ImportProfile::UNIXFS_V1_2025.cid_of(&bytes);
        (bytes, recomputed)
    })
    .await
    .map_err(|e| bad_cid(format!("computing its CID here did not finish: {e}")))?;
    let recomputed = recomputed.map_err(|e| bad_cid(e.to_string()))?;
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
    for name in CHECKS.into_iter().skip(report.checks.len()) {
        report.push(name, Err(reason.to_owned()));
    }
}
