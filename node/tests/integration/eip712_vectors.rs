//! The shared EIP-712 vectors (`contracts/test/vectors/eip712.json`, also checked by the forge
//! tests) reproduced in Rust: type hashes, digests, signatures from the private keys, and the
//! recovered signers. If Rust and Solidity disagree on any byte, this fails.

// Integration tests: a failed unwrap is a failed test.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, Bytes, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use genmint_node::provenance::eip712::{
    self, Attestation, GenerationRequest, recover_attestation_signer, recover_request_signer,
    sign_attestation, sign_request,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    domain: Domain,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Domain {
    name: String,
    version: String,
    chain_id: String,
    verifying_contract: Address,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    request: GenerationRequest,
    request_type_hash: B256,
    request_digest: B256,
    creator_private_key: B256,
    creator_signature: Bytes,
    attestation: Attestation,
    attestation_type_hash: B256,
    attestation_digest: B256,
    node_private_key: B256,
    node_signature: Bytes,
}

fn vectors() -> Vectors {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/test/vectors/eip712.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the shared EIP-712 vectors at {}: {e}; they are committed with the contracts",
            path.display()
        )
    });
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not match the vector format: {e}", path.display()))
}

#[test]
fn rust_reproduces_every_shared_vector() {
    let vectors = vectors();
    assert_eq!(vectors.domain.name, eip712::DOMAIN_NAME);
    assert_eq!(vectors.domain.version, eip712::DOMAIN_VERSION);
    let chain_id: u64 = vectors.domain.chain_id.parse().expect("chainId is a decimal string");
    let domain = eip712::domain(chain_id, vectors.domain.verifying_contract);
    assert!(!vectors.cases.is_empty(), "the vector file has no cases");

    for case in &vectors.cases {
        let name = &case.name;
        let request = &case.request;
        let attestation = &case.attestation;

        assert_eq!(
            keccak256(GenerationRequest::eip712_encode_type().as_bytes()),
            case.request_type_hash,
            "{name}: request type hash"
        );
        assert_eq!(request.eip712_type_hash(), case.request_type_hash, "{name}: request type hash");
        assert_eq!(eip712::request_digest(request, &domain), case.request_digest, "{name}: request digest");

        assert_eq!(
            keccak256(Attestation::eip712_encode_type().as_bytes()),
            case.attestation_type_hash,
            "{name}: attestation type hash"
        );
        assert_eq!(
            eip712::attestation_digest(attestation, &domain),
            case.attestation_digest,
            "{name}: attestation digest"
        );

        let creator = PrivateKeySigner::from_bytes(&case.creator_private_key).expect("creator key");
        assert_eq!(creator.address(), request.creator, "{name}: creator key matches request.creator");
        assert_eq!(
            sign_request(&creator, request, &domain).expect("sign request"),
            case.creator_signature,
            "{name}: creator signature"
        );
        assert_eq!(
            recover_request_signer(request, &case.creator_signature, &domain).expect("recover creator"),
            request.creator,
            "{name}: recovered creator"
        );

        let node = PrivateKeySigner::from_bytes(&case.node_private_key).expect("node key");
        assert_eq!(node.address(), attestation.node, "{name}: node key matches attestation.node");
        assert_eq!(
            sign_attestation(&node, attestation, &domain).expect("sign attestation"),
            case.node_signature,
            "{name}: node signature"
        );
        assert_eq!(
            recover_attestation_signer(attestation, &case.node_signature, &domain).expect("recover node"),
            attestation.node,
            "{name}: recovered node"
        );
    }
}
