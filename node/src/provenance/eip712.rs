//! EIP-712 typed data for genmint: the creator's `GenerationRequest` and `CancelJob`, the node's
//! `Attestation`, their domain, digests, signatures and the JSON shapes wallets and the HTTP API use.
//!
//! The Solidity contract `GenmintNFT` hashes exactly these structs under the domain
//! `("genmint", "1", chainId, contract)`; the shared vectors in `contracts/test/vectors/` keep both
//! sides equal. The request digest is the token id and the job id, so everything that identifies a
//! request starts here. Pure: no I/O.
//!
//! Signatures are 65 bytes `r ‖ s ‖ v` with `v` = 27/28 and low `s`, or the 64-byte ERC-2098
//! compact form `r ‖ vs` (the y-parity in the top bit of `s`), the forms the contract's ECDSA
//! recovery accepts; [`recover_request_signer`] refuses any other form rather than accept a
//! signature the chain would reject.

use std::borrow::Cow;
use std::fmt;

use alloy::dyn_abi::{Resolver, TypedData};
use alloy::primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

/// The EIP-712 domain name the contract uses.
pub const DOMAIN_NAME: &str = "genmint";
/// The EIP-712 domain version the contract uses.
pub const DOMAIN_VERSION: &str = "1";

alloy::sol! {
    /// What a creator asks for and signs: model, prompt, seed and settings, fee and deadline.
    /// In JSON the keys are the Solidity field names and every integer is a decimal string.
    #[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct GenerationRequest {
        address creator;
        bytes32 modelHash;
        string prompt;
        string negativePrompt;
        #[serde(with = "decimal")]
        uint64 seed;
        #[serde(with = "decimal")]
        uint32 width;
        #[serde(with = "decimal")]
        uint32 height;
        #[serde(with = "decimal")]
        uint32 steps;
        /// Classifier-free guidance scale × 100 (750 means 7.5).
        #[serde(with = "decimal")]
        uint32 guidance;
        string scheduler;
        /// Wei.
        #[serde(with = "decimal")]
        uint256 fee;
        #[serde(with = "decimal")]
        uint256 nonce;
        /// Unix seconds.
        #[serde(with = "decimal")]
        uint64 deadline;
    }

    /// What the generating node signs: which request, which model, which pixels and where they are.
    #[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Attestation {
        /// The EIP-712 digest of the request, which is also the token id.
        bytes32 requestDigest;
        bytes32 modelHash;
        /// sha256(width u32 BE ‖ height u32 BE ‖ RGB8 pixels).
        bytes32 pixelDigest;
        string imageCid;
        string metadataCid;
        address node;
    }

    /// What a creator signs to cancel their job. Only nodes read it (the contract never does); the
    /// domain binds it to one chain and contract, the job id to one request, and the deadline
    /// bounds how long a copy of the signature can be used.
    #[derive(Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CancelJob {
        /// The job id: the request's EIP-712 digest.
        bytes32 jobId;
        /// Unix seconds.
        #[serde(with = "decimal")]
        uint64 deadline;
    }
}

/// A request as the HTTP API receives it: the request and the creator's signature over its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRequest {
    pub request: GenerationRequest,
    /// 65 bytes `r ‖ s ‖ v` as 0x hex.
    pub signature: Bytes,
}

impl SignedRequest {
    /// Checks that the signature is the creator's and returns the request digest (the token id).
    pub fn verify(&self, domain: &Eip712Domain) -> Result<B256, Eip712Error> {
        let digest = request_digest(&self.request, domain);
        expect_signer(SignerRole::Creator, self.request.creator, digest, &self.signature)?;
        Ok(digest)
    }
}

/// A creator's cancel as `DELETE /v1/jobs/{id}` receives it (the job id is the path's): the
/// `CancelJob` deadline and the creator's signature over the `CancelJob` digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCancel {
    /// Unix seconds; the node refuses the cancel after it.
    #[serde(with = "decimal")]
    pub deadline: u64,
    /// 65 bytes `r ‖ s ‖ v` (or 64, ERC-2098) as 0x hex.
    pub signature: Bytes,
}

impl SignedCancel {
    /// Signs the cancel of job `job_id` until `deadline` with the creator's key.
    pub fn sign(
        creator: &PrivateKeySigner,
        job_id: B256,
        deadline: u64,
        domain: &Eip712Domain,
    ) -> Result<Self, Eip712Error> {
        let signature = sign_digest(creator, cancel_digest(job_id, deadline, domain))?;
        Ok(Self { deadline, signature })
    }

    /// Checks that `creator` signed this cancel of job `job_id`.
    pub fn verify(&self, job_id: B256, creator: Address, domain: &Eip712Domain) -> Result<(), Eip712Error> {
        expect_signer(
            SignerRole::Creator,
            creator,
            cancel_digest(job_id, self.deadline, domain),
            &self.signature,
        )
    }
}

/// The digest a creator signs to cancel job `job_id` until `deadline`.
pub fn cancel_digest(job_id: B256, deadline: u64, domain: &Eip712Domain) -> B256 {
    CancelJob { jobId: job_id, deadline }.eip712_signing_hash(domain)
}

/// Why a signature could not be made, parsed or matched.
#[derive(Debug, thiserror::Error)]
pub enum Eip712Error {
    #[error("a signature is 65 bytes (r ‖ s ‖ v) or 64 (ERC-2098 r ‖ vs), this one has {0}")]
    SignatureLength(usize),
    #[error("signature v must be 27 or 28, got {0} (some wallets return 0/1: add 27)")]
    SignatureV(u8),
    #[error("signature s is in the upper half of the curve order; sign again with a standard wallet")]
    SignatureHighS,
    #[error("signature does not recover to any address: {0}")]
    Unrecoverable(#[source] alloy::primitives::SignatureError),
    #[error("the {role} is {expected}, but the signature is by {recovered}")]
    WrongSigner { role: SignerRole, expected: Address, recovered: Address },
    #[error("the {role} is {expected}, but the signing key is {signer}: sign with the {role}'s key")]
    SignerMismatch { role: SignerRole, expected: Address, signer: Address },
    #[error("signing failed: {0}")]
    Signing(#[from] alloy::signers::Error),
}

/// Who is expected to have signed: the request's creator or the attesting node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerRole {
    Creator,
    Node,
}

impl fmt::Display for SignerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Creator => "request's creator",
            Self::Node => "attestation's node",
        })
    }
}

/// The genmint domain on one chain for one deployed contract.
pub fn domain(chain_id: u64, contract: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(Cow::Borrowed(DOMAIN_NAME)),
        Some(Cow::Borrowed(DOMAIN_VERSION)),
        Some(U256::from(chain_id)),
        Some(contract),
        None,
    )
}

/// `keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct(request))`: what the creator signs, the
/// job id and (as a uint256) the token id.
pub fn request_digest(request: &GenerationRequest, domain: &Eip712Domain) -> B256 {
    request.eip712_signing_hash(domain)
}

/// The digest the node signs for an attestation.
pub fn attestation_digest(attestation: &Attestation, domain: &Eip712Domain) -> B256 {
    attestation.eip712_signing_hash(domain)
}

/// The token id the contract assigns to a request digest.
pub fn token_id(request_digest: B256) -> U256 {
    U256::from_be_bytes(request_digest.0)
}

/// Signs a request as its creator; refuses a key that is not `request.creator`.
pub fn sign_request(
    signer: &PrivateKeySigner,
    request: &GenerationRequest,
    domain: &Eip712Domain,
) -> Result<Bytes, Eip712Error> {
    ensure_key(SignerRole::Creator, request.creator, signer)?;
    sign_digest(signer, request_digest(request, domain))
}

/// Signs an attestation as its node; refuses a key that is not `attestation.node`.
pub fn sign_attestation(
    signer: &PrivateKeySigner,
    attestation: &Attestation,
    domain: &Eip712Domain,
) -> Result<Bytes, Eip712Error> {
    ensure_key(SignerRole::Node, attestation.node, signer)?;
    sign_digest(signer, attestation_digest(attestation, domain))
}

/// Signs a 32-byte digest as is (RFC 6979, so the bytes equal forge's `vm.sign`): `r ‖ s ‖ v`.
pub fn sign_digest(signer: &PrivateKeySigner, digest: B256) -> Result<Bytes, Eip712Error> {
    let signature = signer.sign_hash_sync(&digest)?;
    Ok(Bytes::copy_from_slice(&signature.as_bytes()))
}

/// The address that signed this request's digest.
pub fn recover_request_signer(
    request: &GenerationRequest,
    signature: &[u8],
    domain: &Eip712Domain,
) -> Result<Address, Eip712Error> {
    recover_digest_signer(request_digest(request, domain), signature)
}

/// The address that signed this attestation's digest.
pub fn recover_attestation_signer(
    attestation: &Attestation,
    signature: &[u8],
    domain: &Eip712Domain,
) -> Result<Address, Eip712Error> {
    recover_digest_signer(attestation_digest(attestation, domain), signature)
}

/// Checks that the attestation is signed by its node and returns the attestation digest.
pub fn verify_attestation(
    attestation: &Attestation,
    signature: &[u8],
    domain: &Eip712Domain,
) -> Result<B256, Eip712Error> {
    let digest = attestation_digest(attestation, domain);
    expect_signer(SignerRole::Node, attestation.node, digest, signature)?;
    Ok(digest)
}

/// The address that signed `digest`, accepting only the signature form the contract accepts.
pub fn recover_digest_signer(digest: B256, signature: &[u8]) -> Result<Address, Eip712Error> {
    let parsed = match signature.len() {
        65 => {
            let v = signature[64];
            if v != 27 && v != 28 {
                return Err(Eip712Error::SignatureV(v));
            }
            Signature::from_raw(signature).map_err(Eip712Error::Unrecoverable)?
        }
        64 => Signature::from_erc2098(signature),
        other => return Err(Eip712Error::SignatureLength(other)),
    };
    if parsed.normalize_s().is_some() {
        return Err(Eip712Error::SignatureHighS);
    }
    parsed.recover_address_from_prehash(&digest).map_err(Eip712Error::Unrecoverable)
}

/// The `eth_signTypedData_v4` payload for a request: a standard wallet signing it produces a
/// signature over [`request_digest`].
pub fn typed_data_json(domain: &Eip712Domain, request: &GenerationRequest) -> serde_json::Value {
    let typed = TypedData::from_struct(request, Some(domain.clone()));
    let mut json = serde_json::json!({
        "types": typed.resolver,
        "primaryType": typed.primary_type,
        "domain": domain_json(domain),
        "message": typed.message,
    });
    // Wallets compare the domain's chain id with the connected chain; they expect a number.
    if let Some(id) = domain.chain_id.and_then(|id| u64::try_from(id).ok()) {
        json["domain"]["chainId"] = id.into();
    }
    json
}

/// The domain, the types and their hashes, for clients that build and sign requests themselves
/// (`GET /v1/eip712`).
pub fn eip712_description(chain_id: u64, contract: Address) -> serde_json::Value {
    let domain = domain(chain_id, contract);
    let mut types = Resolver::from_struct::<GenerationRequest>();
    types.ingest_sol_struct::<Attestation>();
    types.ingest_sol_struct::<CancelJob>();
    types
        .ingest_string(domain.encode_type())
        .unwrap_or_else(|_| unreachable!("alloy renders a valid EIP712Domain type string"));
    let mut domain_value = domain_json(&domain);
    domain_value["chainId"] = chain_id.into();
    serde_json::json!({
        "domain": domain_value,
        "domainSeparator": domain.separator(),
        "types": types,
        "primaryTypes": {
            "request": GenerationRequest::NAME,
            "attestation": Attestation::NAME,
            "cancel": CancelJob::NAME,
        },
        "typeHashes": {
            "GenerationRequest": keccak256(GenerationRequest::eip712_encode_type().as_bytes()),
            "Attestation": keccak256(Attestation::eip712_encode_type().as_bytes()),
            "CancelJob": keccak256(CancelJob::eip712_encode_type().as_bytes()),
        },
        "encodeTypes": {
            "GenerationRequest": GenerationRequest::eip712_encode_type(),
            "Attestation": Attestation::eip712_encode_type(),
            "CancelJob": CancelJob::eip712_encode_type(),
        },
    })
}

fn domain_json(domain: &Eip712Domain) -> serde_json::Value {
    serde_json::to_value(domain).unwrap_or_else(|_| unreachable!("a domain always serializes"))
}

fn ensure_key(role: SignerRole, expected: Address, signer: &PrivateKeySigner) -> Result<(), Eip712Error> {
    let signer = signer.address();
    if signer == expected { Ok(()) } else { Err(Eip712Error::SignerMismatch { role, expected, signer }) }
}

fn expect_signer(
    role: SignerRole,
    expected: Address,
    digest: B256,
    signature: &[u8],
) -> Result<(), Eip712Error> {
    let recovered = recover_digest_signer(digest, signature)?;
    if recovered == expected { Ok(()) } else { Err(Eip712Error::WrongSigner { role, expected, recovered }) }
}

/// Serde for integers as decimal strings (JSON numbers are accepted too when they fit in u64),
/// because uint256 does not fit a JSON number and wallets write decimal strings.
mod decimal {
    use std::fmt;
    use std::marker::PhantomData;
    use std::str::FromStr;

    use serde::{Deserializer, Serializer, de};

    pub(super) fn serialize<T: fmt::Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(super) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr + TryFrom<u64>,
    {
        deserializer.deserialize_any(DecimalVisitor(PhantomData))
    }

    struct DecimalVisitor<T>(PhantomData<T>);

    impl<T: FromStr + TryFrom<u64>> de::Visitor<'_> for DecimalVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer as a decimal string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::invalid_value(de::Unexpected::Str(text), &self));
            }
            T::from_str(text).map_err(|_| E::custom(format!("{text} is out of range")))
        }

        fn visit_u64<E: de::Error>(self, number: u64) -> Result<T, E> {
            T::try_from(number).map_err(|_| E::custom(format!("{number} is out of range")))
        }

        fn visit_i64<E: de::Error>(self, number: i64) -> Result<T, E> {
            let positive =
                u64::try_from(number).map_err(|_| E::invalid_value(de::Unexpected::Signed(number), &self))?;
            self.visit_u64(positive)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{address, b256};

    const CREATOR_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    const NODE_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    const CONTRACT: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");

    fn key(hex: &str) -> PrivateKeySigner {
        hex.parse().unwrap()
    }

    fn request() -> GenerationRequest {
        GenerationRequest {
            creator: key(CREATOR_KEY).address(),
            modelHash: b256!("0x1111111111111111111111111111111111111111111111111111111111111111"),
            prompt: "a lighthouse at dusk, \"oil\" painting ✨".into(),
            negativePrompt: String::new(),
            seed: u64::MAX,
            width: 512,
            height: 512,
            steps: 30,
            guidance: 750,
            scheduler: "ddim".into(),
            fee: U256::MAX,
            nonce: U256::from(7),
            deadline: 1_900_000_000,
        }
    }

    #[test]
    fn type_strings_match_the_solidity_structs() {
        assert_eq!(
            GenerationRequest::eip712_encode_type(),
            "GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,\
             uint64 seed,uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,\
             uint256 fee,uint256 nonce,uint64 deadline)"
        );
        assert_eq!(
            Attestation::eip712_encode_type(),
            "Attestation(bytes32 requestDigest,bytes32 modelHash,bytes32 pixelDigest,\
             string imageCid,string metadataCid,address node)"
        );
    }

    #[test]
    fn what_a_wallet_signs_is_what_we_verify() {
        let domain = domain(31337, CONTRACT);
        let request = request();
        let json = typed_data_json(&domain, &request);
        assert_eq!(json["domain"]["chainId"], 31337);
        assert_eq!(json["primaryType"], "GenerationRequest");
        assert_eq!(json["message"]["fee"], U256::MAX.to_string());
        assert_eq!(json["message"]["seed"], u64::MAX.to_string());
        assert!(json["types"]["EIP712Domain"].is_array());

        let typed: TypedData = serde_json::from_value(json).unwrap();
        assert_eq!(typed.eip712_signing_hash().unwrap(), request_digest(&request, &domain));
    }

    #[test]
    fn a_handwritten_wallet_payload_hashes_to_the_request_digest() {
        // The shape viem/ethers/MetaMask send to eth_signTypedData_v4, written out by hand.
        let request = request();
        let payload = serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "GenerationRequest": [
                    {"name": "creator", "type": "address"}, {"name": "modelHash", "type": "bytes32"},
                    {"name": "prompt", "type": "string"}, {"name": "negativePrompt", "type": "string"},
                    {"name": "seed", "type": "uint64"}, {"name": "width", "type": "uint32"},
                    {"name": "height", "type": "uint32"}, {"name": "steps", "type": "uint32"},
                    {"name": "guidance", "type": "uint32"}, {"name": "scheduler", "type": "string"},
                    {"name": "fee", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint64"}
                ]
            },
            "primaryType": "GenerationRequest",
            "domain": {"name": "genmint", "version": "1", "chainId": 31337,
                       "verifyingContract": CONTRACT.to_string()},
            "message": serde_json::to_value(&request).unwrap(),
        });
        let typed: TypedData = serde_json::from_value(payload).unwrap();
        assert_eq!(typed.eip712_signing_hash().unwrap(), request_digest(&request, &domain(31337, CONTRACT)));
    }

    #[test]
    fn signatures_round_trip_and_name_the_signer() {
        let domain = domain(31337, CONTRACT);
        let request = request();
        let creator = key(CREATOR_KEY);
        let signature = sign_request(&creator, &request, &domain).unwrap();
        assert_eq!(signature.len(), 65);
        assert!(matches!(signature[64], 27 | 28));
        assert_eq!(recover_request_signer(&request, &signature, &domain).unwrap(), creator.address());

        let signed = SignedRequest { request: request.clone(), signature };
        assert_eq!(signed.verify(&domain).unwrap(), request_digest(&request, &domain));

        let node = key(NODE_KEY);
        let attestation = Attestation {
            requestDigest: request_digest(&request, &domain),
            modelHash: request.modelHash,
            pixelDigest: B256::repeat_byte(0x22),
            imageCid: "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a".into(),
            metadataCid: "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a".into(),
            node: node.address(),
        };
        let node_signature = sign_attestation(&node, &attestation, &domain).unwrap();
        assert_eq!(
            verify_attestation(&attestation, &node_signature, &domain).unwrap(),
            attestation_digest(&attestation, &domain)
        );
    }

    #[test]
    fn a_signature_by_someone_else_or_for_another_domain_is_refused() {
        let domain = domain(31337, CONTRACT);
        let request = request();
        let node = key(NODE_KEY);

        let err = sign_request(&node, &request, &domain).unwrap_err();
        assert!(matches!(err, Eip712Error::SignerMismatch { role: SignerRole::Creator, .. }));

        let by_node = sign_digest(&node, request_digest(&request, &domain)).unwrap();
        let err = SignedRequest { request: request.clone(), signature: by_node }.verify(&domain).unwrap_err();
        assert!(matches!(err, Eip712Error::WrongSigner { recovered, .. } if recovered == node.address()));

        let signature = sign_request(&key(CREATOR_KEY), &request, &domain).unwrap();
        let other_chain = super::domain(1, CONTRACT);
        assert!(SignedRequest { request, signature }.verify(&other_chain).is_err());
    }

    #[test]
    fn only_the_signature_forms_the_contract_accepts_are_recovered() {
        let digest = B256::repeat_byte(0x42);
        let signature = sign_digest(&key(CREATOR_KEY), digest).unwrap();

        assert!(matches!(
            recover_digest_signer(digest, &signature[..63]),
            Err(Eip712Error::SignatureLength(63))
        ));
        // The contract also takes the 64-byte ERC-2098 form, whatever the y-parity.
        for seed in [0x42u8, 0x43, 0x44, 0x45] {
            let digest = B256::repeat_byte(seed);
            let full = Signature::from_raw(&sign_digest(&key(CREATOR_KEY), digest).unwrap()).unwrap();
            let compact = full.as_erc2098();
            assert_eq!(recover_digest_signer(digest, &compact).unwrap(), key(CREATOR_KEY).address());
        }

        let mut zero_one_v = signature.to_vec();
        zero_one_v[64] -= 27;
        assert!(matches!(recover_digest_signer(digest, &zero_one_v), Err(Eip712Error::SignatureV(_))));

        // (r, n - s, v ^ 1) is the same signature's malleable twin.
        let parsed = Signature::from_raw(&signature).unwrap();
        let n = U256::from_str_radix("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
            .unwrap();
        let twin = Signature::new(parsed.r(), n - parsed.s(), !parsed.v());
        assert!(matches!(recover_digest_signer(digest, &twin.as_bytes()), Err(Eip712Error::SignatureHighS)));
    }

    #[test]
    fn request_json_uses_solidity_names_and_decimal_strings() {
        let request = request();
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["negativePrompt"], "");
        assert_eq!(json["width"], "512");
        assert_eq!(json["nonce"], "7");
        assert_eq!(serde_json::from_value::<GenerationRequest>(json.clone()).unwrap(), request);

        let mut numbers = json.clone();
        numbers["width"] = 512.into();
        numbers["nonce"] = 7.into();
        assert_eq!(serde_json::from_value::<GenerationRequest>(numbers).unwrap(), request);

        for (field, bad) in [("width", "0x200"), ("width", "4294967296"), ("nonce", "-1"), ("seed", "")] {
            let mut broken = json.clone();
            broken[field] = bad.into();
            assert!(serde_json::from_value::<GenerationRequest>(broken).is_err(), "{field}={bad}");
        }
        let mut unknown = json;
        unknown["negative_prompt"] = "typo".into();
        assert!(serde_json::from_value::<GenerationRequest>(unknown).is_err());
    }

    #[test]
    fn description_lists_domain_types_and_hashes() {
        let description = eip712_description(31337, CONTRACT);
        assert_eq!(description["domain"]["name"], "genmint");
        assert_eq!(description["domain"]["chainId"], 31337);
        assert_eq!(description["types"]["Attestation"].as_array().unwrap().len(), 6);
        assert_eq!(description["types"]["GenerationRequest"].as_array().unwrap().len(), 13);
        let domain = domain(31337, CONTRACT);
        assert_eq!(description["domainSeparator"], domain.separator().to_string());
        assert_eq!(description["typeHashes"]["GenerationRequest"], request().eip712_type_hash().to_string());
        assert_eq!(description["primaryTypes"]["cancel"], "CancelJob");
        assert_eq!(description["encodeTypes"]["CancelJob"], "CancelJob(bytes32 jobId,uint64 deadline)");
    }

    #[test]
    fn a_cancel_a_wallet_signs_from_the_description_is_the_one_verified_and_binds_job_chain_and_contract() {
        let domain = domain(31337, CONTRACT);
        let job = request_digest(&request(), &domain);
        let creator = key(CREATOR_KEY);
        // The payload a wallet signs, built from `GET /v1/eip712` as the web page does.
        let description = eip712_description(31337, CONTRACT);
        let payload = serde_json::json!({
            "types": {
                "EIP712Domain": description["types"]["EIP712Domain"],
                "CancelJob": description["types"]["CancelJob"],
            },
            "primaryType": "CancelJob",
            "domain": description["domain"],
            "message": {"jobId": job.to_string(), "deadline": "1900000000"},
        });
        let typed: TypedData = serde_json::from_value(payload).unwrap();
        assert_eq!(typed.eip712_signing_hash().unwrap(), cancel_digest(job, 1_900_000_000, &domain));

        let cancel = SignedCancel::sign(&creator, job, 1_900_000_000, &domain).unwrap();
        cancel.verify(job, creator.address(), &domain).unwrap();
        let node = key(NODE_KEY).address();
        assert!(matches!(
            cancel.verify(job, node, &domain),
            Err(Eip712Error::WrongSigner { expected, .. }) if expected == node
        ));
        assert!(cancel.verify(B256::repeat_byte(1), creator.address(), &domain).is_err(), "another job");
        assert!(cancel.verify(job, creator.address(), &super::domain(1, CONTRACT)).is_err(), "another chain");
        let other_contract = super::domain(31337, Address::repeat_byte(9));
        assert!(cancel.verify(job, creator.address(), &other_contract).is_err(), "another contract");
        let extended = SignedCancel { deadline: cancel.deadline + 1, ..cancel.clone() };
        assert!(extended.verify(job, creator.address(), &domain).is_err(), "the deadline is signed");
    }
}
