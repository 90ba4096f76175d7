//! The chain client against a real anvil and the real `GenmintNFT` from the committed artifact:
//! deploy, register, mint with real EIP-712 signatures, read provenance and events back, and see
//! each refusal come back as a typed rejection. Needs `anvil` from `scripts/setup.sh`; without it
//! the tests fail with the install hint.

// Integration tests: a failed unwrap is a failed test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256, b256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use genmint_node::chain::{ChainClient, ChainError, ContractRejection};
use genmint_node::devnet::anvil::{Anvil, DevAccount};
use genmint_node::provenance::eip712::{
    self, Attestation, GenerationRequest, sign_attestation, sign_digest, sign_request,
};

const MODEL: B256 = b256!("0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
const IMAGE_CID: &str = "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a";
const METADATA_CID: &str = "bafkreih3kpwm2rmiyl2dxlh3bikcxyhppu6xiivnpdr5mo2c5yjnvpcgwe";

/// anvil with a deployed contract, the node operator and the model registered.
struct Devnet {
    anvil: Anvil,
    owner: ChainClient,
    /// The node operator's client: the node submits mints.
    node: ChainClient,
}

async fn devnet() -> Devnet {
    let anvil = Anvil::start().await.unwrap_or_else(|e| panic!("{e}"));
    let address = ChainClient::deploy(anvil.rpc_url(), anvil.dev_key(DevAccount::Owner))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let owner = ChainClient::connect(anvil.rpc_url(), DevAccount::Owner.key(), address).await.unwrap();
    owner.register_node(DevAccount::NodeOperator.key().address()).await.unwrap();
    owner.register_model(MODEL, "tiny-test", "genmint tests").await.unwrap();
    let node = ChainClient::connect(anvil.rpc_url(), DevAccount::NodeOperator.key(), address).await.unwrap();
    Devnet { anvil, owner, node }
}

fn in_an_hour() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600
}

fn request(nonce: u64, deadline: u64) -> GenerationRequest {
    GenerationRequest {
        creator: DevAccount::Creator.key().address(),
        modelHash: MODEL,
        prompt: "a lighthouse at dusk".into(),
        negativePrompt: "blurry".into(),
        seed: 42,
        width: 64,
        height: 64,
        steps: 4,
        guidance: 750,
        scheduler: "ddim".into(),
        fee: U256::ZERO,
        nonce: U256::from(nonce),
        deadline,
    }
}

/// The creator's signature and the node's signed attestation for `request`.
fn signed(
    client: &ChainClient,
    request: &GenerationRequest,
    node_key: &PrivateKeySigner,
) -> (Bytes, Attestation, Bytes) {
    let domain = client.domain();
    let creator_signature = sign_request(&DevAccount::Creator.key(), request, &domain).unwrap();
    let attestation = Attestation {
        requestDigest: eip712::request_digest(request, &domain),
        modelHash: request.modelHash,
        pixelDigest: B256::repeat_byte(0x77),
        imageCid: IMAGE_CID.into(),
        metadataCid: METADATA_CID.into(),
        node: node_key.address(),
    };
    let node_signature = sign_attestation(node_key, &attestation, &domain).unwrap();
    (creator_signature, attestation, node_signature)
}

fn rejection(result: Result<impl std::fmt::Debug, ChainError>) -> ContractRejection {
    match result {
        Err(ChainError::Rejected { reason }) => reason,
        other => panic!("expected a contract rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn mint_records_provenance_and_refuses_a_replay() {
    let Devnet { anvil, owner, node } = devnet().await;
    let operator = DevAccount::NodeOperator.key();
    let creator = DevAccount::Creator.key().address();
    assert_eq!(node.chain_id(), anvil.chain_id());
    assert!(owner.is_node(operator.address()).await.unwrap());
    assert!(!owner.is_node(creator).await.unwrap());
    assert!(owner.is_model(MODEL).await.unwrap());
    let info = owner.model_info(MODEL).await.unwrap();
    assert_eq!((info.name.as_str(), info.author.as_str(), info.active), ("tiny-test", "genmint tests", true));

    let request = request(1, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &request, &operator);
    let digest = eip712::request_digest(&request, &node.domain());
    let token_id = eip712::token_id(digest);
    assert_eq!(node.hash_request(&request).await.unwrap(), digest);
    assert_eq!(
        node.hash_attestation(&attestation).await.unwrap(),
        eip712::attestation_digest(&attestation, &node.domain())
    );
    assert!(!node.token_exists(token_id).await.unwrap());
    assert_eq!(node.provenance(token_id).await.unwrap(), None);
    assert_eq!(node.minted_event(token_id).await.unwrap(), None);

    let outcome = node.mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    assert_eq!(outcome.token_id, token_id);
    assert_eq!(node.find_mint_receipt(outcome.tx_hash).await.unwrap(), Some(outcome));
    assert_eq!(node.receipt_for(outcome.tx_hash).await.unwrap(), outcome);

    assert!(node.token_exists(token_id).await.unwrap());
    assert_eq!(node.owner_of(token_id).await.unwrap(), Some(creator));
    assert_eq!(node.token_uri(token_id).await.unwrap(), Some(format!("ipfs://{METADATA_CID}")));

    let provenance = node.provenance(token_id).await.unwrap().expect("minted token has provenance");
    assert_eq!(provenance.creator, creator);
    assert_eq!(provenance.node, operator.address());
    assert_eq!(provenance.model_hash, MODEL);
    assert_eq!(provenance.seed, 42);
    assert_eq!(provenance.mint_block, outcome.block_number);
    assert!(provenance.minted_at > 0);
    assert_eq!(provenance.pixel_digest, attestation.pixelDigest);
    assert_eq!(provenance.prompt_hash, keccak256(request.prompt.as_bytes()));
    assert_eq!(provenance.image_cid, IMAGE_CID);
    assert_eq!(provenance.metadata_cid, METADATA_CID);

    let event = node.minted_event(token_id).await.unwrap().expect("minted token has an event");
    assert_eq!(event.token_id, token_id);
    assert_eq!((event.creator, event.node), (creator, operator.address()));
    assert_eq!((event.model_hash, event.pixel_digest), (MODEL, attestation.pixelDigest));
    assert_eq!((event.image_cid.as_str(), event.metadata_cid.as_str()), (IMAGE_CID, METADATA_CID));
    assert_eq!(event.creator_signature, creator_signature);
    assert_eq!(event.node_signature, node_signature);
    assert_eq!((event.tx_hash, event.block_number), (outcome.tx_hash, outcome.block_number));

    let replay = node.mint(&request, &creator_signature, &attestation, &node_signature).await;
    assert_eq!(rejection(replay), ContractRejection::AlreadyMinted { token_id });

    // The refused replay cost the client no nonce: its next mint is mined at once.
    let next = self::request(2, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &next, &operator);
    let quick = node.clone().with_receipt_timeout(Duration::from_secs(10));
    let outcome = quick.mint(&next, &creator_signature, &attestation, &node_signature).await.unwrap();
    assert_eq!(node.owner_of(outcome.token_id).await.unwrap(), Some(creator));

    anvil.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_come_back_typed() {
    let Devnet { anvil, owner, node } = devnet().await;
    let operator = DevAccount::NodeOperator.key();

    // A node key the registry does not know.
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
    let request = request(2, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &request, &stranger);
    let result = node.mint(&request, &creator_signature, &attestation, &node_signature).await;
    assert_eq!(rejection(result), ContractRejection::NodeNotRegistered { node: stranger.address() });

    // A deadline in the past.
    let expired = self::request(3, 1);
    let (creator_signature, attestation, node_signature) = signed(&node, &expired, &operator);
    match rejection(node.mint(&expired, &creator_signature, &attestation, &node_signature).await) {
        ContractRejection::RequestExpired { deadline, now } => {
            assert_eq!(deadline, 1);
            assert!(now > U256::from(1));
        }
        other => panic!("expected RequestExpired, got {other:?}"),
    }

    // Signed by someone other than the creator.
    let request = self::request(4, in_an_hour());
    let (_, attestation, node_signature) = signed(&node, &request, &operator);
    let forged = sign_digest(&operator, eip712::request_digest(&request, &node.domain())).unwrap();
    let result = node.mint(&request, &forged, &attestation, &node_signature).await;
    assert_eq!(rejection(result), ContractRejection::BadCreatorSignature);

    // A model nobody registered.
    let mut unknown_model = self::request(5, in_an_hour());
    unknown_model.modelHash = B256::repeat_byte(0x99);
    let (creator_signature, attestation, node_signature) = signed(&node, &unknown_model, &operator);
    let result = node.mint(&unknown_model, &creator_signature, &attestation, &node_signature).await;
    assert_eq!(
        rejection(result),
        ContractRejection::ModelNotRegistered { model_hash: unknown_model.modelHash }
    );

    // The refusals cost the client nothing: its next mint goes through.
    let valid = self::request(6, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &valid, &operator);
    let outcome = node.mint(&valid, &creator_signature, &attestation, &node_signature).await.unwrap();
    assert_eq!(node.owner_of(outcome.token_id).await.unwrap(), Some(valid.creator));

    // Only the owner manages the registries; a read-only client sends nothing.
    let result = node.register_node(Address::repeat_byte(0x22)).await;
    assert_eq!(rejection(result), ContractRejection::NotOwner { account: operator.address() });
    let reader = ChainClient::connect_read_only(anvil.rpc_url(), owner.address()).await.unwrap();
    assert!(matches!(reader.register_node(operator.address()).await, Err(ChainError::ReadOnly)));

    // Misconfiguration is reported at connect time.
    let err = ChainClient::connect_read_only(anvil.rpc_url(), Address::repeat_byte(0x33)).await.unwrap_err();
    assert!(matches!(err, ChainError::NoContract { chain_id: 31337, .. }), "{err}");

    anvil.stop().await.unwrap();
    let err = ChainClient::connect_read_only(owner.rpc_url(), owner.address()).await.unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("genmint dev"), "{err}");
}
