//! End-to-end verification of one token, for buyers, marketplaces and peer nodes:
//! chain record and mint event ⇄ tokenURI metadata ⇄ image and metadata bytes (CIDs recomputed
//! here) ⇄ pixel digest ⇄ creator signature ⇄ node attestation ⇄ the contract's own ERC-7007
//! `verify` ⇄ node and model registries.
//!
//! Where each field is proven: the contract stores the creator, the node, the mint block and the
//! metadata CID; the token id is the request's EIP-712 digest, so the request in the metadata is the
//! minted one exactly when it hashes to the id (and its ABI encoding hashes to the event's prompt
//! topic); the mint's `AigcData` event carries the pixel digest, the image CID and both signatures.
//!
//! [`verify_token`] runs every check it can and reports each by name with its outcome; a check
//! whose inputs an earlier failure made unavailable is reported as failed with that reason, so a
//! report always lists the same checks.

use alloy::primitives::{B256, U256, keccak256};
use serde::Serialize;

use crate::chain::{ChainClient, MintedEvent, Provenance};
use crate::ipfs::{Cid, ContentStore};
use crate::provenance::eip712::{
    Attestation, SignedRequest, recover_attestation_signer, recover_request_signer, request_digest,
};
use crate::provenance::metadata::TokenMetadata;
use crate::provenance::png;

/// The largest metadata file and image verification downloads.
const MAX_METADATA_BYTES: usize = 1 << 20;
const MAX_IMAGE_BYTES: usize = 64 << 20;

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
    fn push(&mut self, name: &'static str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.checks.push(Check { name, ok, detail });
        self.ok &= ok;
        ok
    }
}

/// The checks in the order they run; every report lists all of them.
pub const CHECKS: [&str; 11] = [
    "token",
    "metadata_cid",
    "metadata",
    "request",
    "creator_signature",
    "image_cid",
    "pixel_digest",
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
        return report;
    };

    // Metadata: its bytes hash to the CID the chain holds, and it parses.
    let metadata = match fetch(ipfs, &record.metadata_cid, MAX_METADATA_BYTES).await {
        Ok(bytes) => {
            report.push(
                "metadata_cid",
                Ok(format!("{} matches the bytes fetched from IPFS", record.metadata_cid)),
            );
            match serde_json::from_slice::<TokenMetadata>(&bytes) {
                Ok(metadata) => {
                    let image_uri = format!("ipfs://{}", event.image_cid);
                    if metadata.image == image_uri && metadata.aigc_data == image_uri {
                        report.push("metadata", Ok(format!("image and aigc_data point at {image_uri}")));
                        Some(metadata)
                    } else {
                        let wrong: Vec<String> =
                            [("image", &metadata.image), ("aigc_data", &metadata.aigc_data)]
                                .into_iter()
                                .filter(|(_, uri)| **uri != image_uri)
                                .map(|(field, uri)| format!("{field} is {uri}"))
                                .collect();
                        report.push(
                            "metadata",
                            Err(format!(
                                "metadata {} but the mint event records {image_uri}",
                                wrong.join(" and ")
                            )),
                        );
                        Some(metadata)
                    }
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

    // The image: bytes hash to the CID, pixels hash to the attested pixel digest.
    match fetch(ipfs, &event.image_cid, MAX_IMAGE_BYTES).await {
        Ok(bytes) => {
            report.push("image_cid", Ok(format!("{} matches the bytes fetched from IPFS", event.image_cid)));
            let result = match png::decode(&bytes) {
                Ok(image) => {
                    let digest = B256::from(image.pixel_digest());
                    if digest == event.pixel_digest {
                        Ok(format!("{}x{} pixels hash to {digest}", image.width, image.height))
                    } else {
                        Err(format!("pixels hash to {digest}, but the node attested {}", event.pixel_digest))
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            report.push("pixel_digest", result);
        }
        Err(e) => {
            report.push("image_cid", Err(e));
            report.push("pixel_digest", Err("no image to hash".into()));
        }
    }

    // The node's attestation, rebuilt from the chain record, the event and the request; then the
    // contract's own check of the same data, and the registries.
    let model_hash = signed.as_ref().map(|s| s.request.modelHash);
    let result = match model_hash {
        Some(model_hash) => {
            let attestation = Attestation {
                requestDigest: B256::from(token_id.to_be_bytes::<32>()),
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
    let result = match chain.is_node(record.node).await {
        Ok(true) => Ok(format!("{} is a registered node", record.node)),
        Ok(false) => Err(format!("{} is not (or no longer) a registered node", record.node)),
        Err(e) => Err(e.to_string()),
    };
    report.push("node_registry", result);
    let result = match model_hash {
        Some(model_hash) => match chain.model_info(model_hash).await {
            Ok(info) if info.active => {
                Ok(format!("{model_hash} is registered as {} by {}", info.name, info.author))
            }
            Ok(_) => Err(format!("{model_hash} is not an active registered model")),
            Err(e) => Err(e.to_string()),
        },
        None => Err("no request to read the model hash from".into()),
    };
    report.push("model_registry", result);
    report
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

async fn fetch(ipfs: &impl ContentStore, cid: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let parsed: Cid = cid.parse().map_err(|e| format!("{cid:?} is not a CID genmint reads: {e}"))?;
    let bytes = ipfs.cat(&parsed, max_bytes).await.map_err(|e| e.to_string())?;
    let recomputed = crate::ipfs::ImportProfile::UNIXFS_V1_2025.cid_of(&bytes).map_err(|e| e.to_string())?;
    if recomputed == parsed {
        Ok(bytes)
    } else {
        Err(format!("the bytes fetched for {cid} hash to {recomputed}"))
    }
}

fn skip_rest(report: &mut Report, reason: &str) {
    for name in CHECKS.iter().skip(report.checks.len()) {
        report.push(name, Err(reason.to_owned()));
    }
}
