//! Rust bindings for `GenmintNFT`, generated at compile time from the committed artifact
//! (`contracts/artifacts/GenmintNFT.json`: ABI and creation bytecode, so builds need no forge; the
//! test suite rebuilds the artifact and fails if it differs, so the bindings cannot drift).
//!
//! The artifact declares its own `GenerationRequest` and `Attestation` structs, and the mint input
//! `Job`. They are wire types only and stay inside `chain`: the provenance types in
//! [`provenance::eip712`](crate::provenance::eip712) are the ones the rest of the node uses. The
//! conversions below name every field, so a field added to or renamed in the contract stops the
//! build, and a test compares the two EIP-712 type strings (names, types and order).
//!
//! A `Job` carries an attestation in the contract's compact form: the metadata CID as its sha2-256
//! digest (the contract rebuilds the CID) and the node's signature in ERC-2098 form (64 bytes).

// The generated event constructors take one argument per event field.
#![allow(clippy::too_many_arguments)]

use alloy::primitives::{B256, Bytes, Signature};
use alloy::sol_types::SolValue;

use super::error::ChainError;
use crate::ipfs::Cid;
use crate::provenance::eip712::{Attestation, GenerationRequest};

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    GenmintNFT,
    "../contracts/artifacts/GenmintNFT.json"
);

impl From<&GenerationRequest> for GenmintNFT::GenerationRequest {
    fn from(request: &GenerationRequest) -> Self {
        Self {
            creator: request.creator,
            modelHash: request.modelHash,
            prompt: request.prompt.clone(),
            negativePrompt: request.negativePrompt.clone(),
            seed: request.seed,
            width: request.width,
            height: request.height,
            steps: request.steps,
            guidance: request.guidance,
            scheduler: request.scheduler.clone(),
            fee: request.fee,
            nonce: request.nonce,
            deadline: request.deadline,
        }
    }
}

impl From<&Attestation> for GenmintNFT::Attestation {
    fn from(attestation: &Attestation) -> Self {
        Self {
            requestDigest: attestation.requestDigest,
            modelHash: attestation.modelHash,
            pixelDigest: attestation.pixelDigest,
            imageCid: attestation.imageCid.clone(),
            metadataCid: attestation.metadataCid.clone(),
            node: attestation.node,
        }
    }
}

/// `abi.encode(request)`: the request as the contract's ERC-7007 `prompt`.
pub fn abi_encode_request(request: &GenerationRequest) -> Vec<u8> {
    GenmintNFT::GenerationRequest::from(request).abi_encode()
}

/// The contract's mint input for a signed request and a signed attestation.
pub(super) fn job(
    request: &GenerationRequest,
    creator_signature: &Bytes,
    attestation: &Attestation,
    node_signature: &Bytes,
) -> Result<GenmintNFT::Job, ChainError> {
    let metadata_digest = raw_block_digest(&attestation.metadataCid)
        .ok_or_else(|| ChainError::UnsupportedMetadataCid { cid: attestation.metadataCid.clone() })?;
    let node_signature = Signature::from_raw(node_signature)
        .map_err(|e| ChainError::BadNodeSignature { detail: e.to_string() })?
        .as_erc2098();
    Ok(GenmintNFT::Job {
        request: request.into(),
        creatorSignature: creator_signature.clone(),
        output: GenmintNFT::Output {
            pixelDigest: attestation.pixelDigest,
            metadataDigest: metadata_digest,
            node: attestation.node,
            imageCid: attestation.imageCid.clone(),
        },
        nodeSignature: GenmintNFT::CompactSignature {
            r: B256::from_slice(&node_signature[..32]),
            vs: B256::from_slice(&node_signature[32..]),
        },
    })
}

/// The sha2-256 digest inside a CIDv1 of a raw block (`bafkrei…`), the only CID form the contract
/// stores; `None` for anything else (a dag-pb CID of a file over one chunk, another hash).
pub(super) fn raw_block_digest(cid: &str) -> Option<B256> {
    const RAW_SHA256_PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
    let cid: Cid = cid.parse().ok()?;
    let bytes = cid.as_bytes();
    (bytes.len() == 36 && bytes[..4] == RAW_SHA256_PREFIX).then(|| B256::from_slice(&bytes[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::U256;
    use alloy::sol_types::SolStruct;

    #[test]
    fn the_prompt_is_the_solidity_abi_encode_of_the_request() {
        let request = GenerationRequest {
            creator: alloy::primitives::Address::repeat_byte(1),
            modelHash: B256::repeat_byte(2),
            prompt: "a".repeat(33),
            negativePrompt: String::new(),
            seed: 3,
            width: 4,
            height: 5,
            steps: 6,
            guidance: 7,
            scheduler: "ddim".into(),
            fee: alloy::primitives::U256::from(8),
            nonce: alloy::primitives::U256::from(9),
            deadline: 10,
        };
        let encoded = abi_encode_request(&request);
        // abi.encode of a dynamic struct: the offset word 0x20, 13 head words, three strings
        // (33 bytes take two words, the empty string none, "ddim" one), each after its length word.
        assert_eq!(encoded.len(), 32 + 13 * 32 + (32 + 64) + 32 + (32 + 32));
        assert_eq!(U256::from_be_slice(&encoded[..32]), U256::from(32));
        assert_eq!(U256::from_be_slice(&encoded[32 + 2 * 32..32 + 3 * 32]), U256::from(13 * 32));
    }

    #[test]
    fn raw_block_digests_come_out_of_raw_cids_only() {
        let digest = raw_block_digest("bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta");
        assert_eq!(
            digest,
            Some(alloy::primitives::b256!(
                "0x9b1b4dae9864c55ef2b56be85ef06bf394fba2667709a60e35d376b53f3b6998"
            ))
        );
        // dag-pb (a file of several chunks) and junk have no raw-block digest.
        assert_eq!(raw_block_digest("bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq"), None);
        assert_eq!(raw_block_digest("not a cid"), None);
    }

    #[test]
    fn contract_structs_hash_like_the_provenance_structs() {
        assert_eq!(
            GenmintNFT::GenerationRequest::eip712_encode_type(),
            GenerationRequest::eip712_encode_type()
        );
        assert_eq!(GenmintNFT::Attestation::eip712_encode_type(), Attestation::eip712_encode_type());
    }
}
