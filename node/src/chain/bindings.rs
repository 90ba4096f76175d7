//! Rust bindings for `GenmintNFT`, generated at compile time from the committed artifact
//! (`contracts/artifacts/GenmintNFT.json`: ABI and creation bytecode, so builds need no forge).
//!
//! The artifact declares its own `GenerationRequest` and `Attestation` structs. They are wire types
//! only and stay inside `chain`: the provenance types in
//! [`provenance::eip712`](crate::provenance::eip712) are the ones the rest of the node uses. The
//! conversions below name every field, so a field added to or renamed in the contract stops the
//! build, and a test compares the two EIP-712 type strings (names, types and order).

// The generated event constructors take one argument per event field.
#![allow(clippy::too_many_arguments)]

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolStruct;

    #[test]
    fn contract_structs_hash_like_the_provenance_structs() {
        assert_eq!(
            GenmintNFT::GenerationRequest::eip712_encode_type(),
            GenerationRequest::eip712_encode_type()
        );
        assert_eq!(GenmintNFT::Attestation::eip712_encode_type(), Attestation::eip712_encode_type());
    }
}
