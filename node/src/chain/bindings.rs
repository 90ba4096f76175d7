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
//! Building a `Job` (the compact attestation the contract takes) lives with minting, in `mint`.

// The generated event constructors take one argument per event field.
#![allow(clippy::too_many_arguments)]

use alloy::sol_types::SolValue;

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, U256};
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
    fn contract_structs_hash_like_the_provenance_structs() {
        assert_eq!(
            GenmintNFT::GenerationRequest::eip712_encode_type(),
            GenerationRequest::eip712_encode_type()
        );
        assert_eq!(GenmintNFT::Attestation::eip712_encode_type(), Attestation::eip712_encode_type());
    }
}
