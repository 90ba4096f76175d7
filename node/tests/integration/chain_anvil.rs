//! The chain client against a real anvil and the real `GenmintNFT` from the committed artifact:
//! deploy, register, deposit, mint (alone, in a batch, through the batching actor) with real EIP-712
//! signatures, read records and events back, check them with the contract's ERC-7007 `verify`, and
//! see each refusal come back as a typed rejection. Needs `anvil` from `scripts/setup.sh`; without
//! it the tests fail with the install hint.

// Integration tests: a failed unwrap is a failed test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, U256, b256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use genmint_node::chain::{
    ChainClient, ChainError, ContractRejection, MintBatcher, MintJob, abi_encode_request,
};
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
    owner
        .register_model(MODEL, "tiny-test", "genmint tests", "https://genmint.invalid/licence")
        .await
        .unwrap();
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
    assert_eq!(info.license_uri, "https://genmint.invalid/licence");

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
    assert_eq!(node.find_mint_receipt(outcome.tx_hash, token_id).await.unwrap(), Some(outcome));
    assert_eq!(node.receipt_for(outcome.tx_hash, token_id).await.unwrap(), outcome);
    let other = U256::from(7);
    assert!(matches!(
        node.receipt_for(outcome.tx_hash, other).await,
        Err(ChainError::UnexpectedReceipt { .. })
    ));

    assert!(node.token_exists(token_id).await.unwrap());
    assert_eq!(node.owner_of(token_id).await.unwrap(), Some(creator));
    assert_eq!(node.token_uri(token_id).await.unwrap(), Some(format!("ipfs://{METADATA_CID}")));

    let provenance = node.provenance(token_id).await.unwrap().expect("minted token has provenance");
    assert_eq!(provenance.creator, creator);
    assert_eq!(provenance.node, operator.address());
    assert_eq!(provenance.mint_block, outcome.block_number);
    assert_eq!(provenance.metadata_cid, METADATA_CID);

    let event = node.minted_event(token_id).await.unwrap().expect("minted token has an event");
    assert_eq!(event.token_id, token_id);
    assert_eq!(event.prompt_hash, keccak256(abi_encode_request(&request)));
    assert_eq!(event.pixel_digest, attestation.pixelDigest);
    assert_eq!(event.image_cid, IMAGE_CID);
    assert_eq!(event.creator_signature, creator_signature);
    assert_eq!(event.node_signature, node_signature);
    assert_eq!((event.tx_hash, event.block_number), (outcome.tx_hash, outcome.block_number));
    assert!(node.verify_aigc(&request, &event.aigc_data, &event.proof).await.unwrap());
    let mut changed = request.clone();
    changed.seed += 1;
    assert!(!node.verify_aigc(&changed, &event.aigc_data, &event.proof).await.unwrap());

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

    // A fee above the creator's deposit (none).
    let mut costly = self::request(7, in_an_hour());
    costly.fee = U256::from(1);
    let (creator_signature, attestation, node_signature) = signed(&node, &costly, &operator);
    let result = node.mint(&costly, &creator_signature, &attestation, &node_signature).await;
    assert_eq!(
        rejection(result),
        ContractRejection::InsufficientFunds {
            account: costly.creator,
            available: U256::ZERO,
            needed: U256::from(1)
        }
    );

    // A metadata CID the contract cannot store is refused before anything is sent.
    let request = self::request(8, in_an_hour());
    let (creator_signature, mut attestation, _) = signed(&node, &request, &operator);
    attestation.metadataCid = "bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq".into();
    let node_signature = sign_attestation(&operator, &attestation, &node.domain()).unwrap();
    let result = node.mint(&request, &creator_signature, &attestation, &node_signature).await;
    assert!(matches!(result, Err(ChainError::UnsupportedMetadataCid { .. })), "{result:?}");

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

#[tokio::test]
async fn fees_move_from_the_creator_deposit_to_the_node() {
    let Devnet { anvil, node, .. } = devnet().await;
    let operator = DevAccount::NodeOperator.key();
    let creator =
        ChainClient::connect(anvil.rpc_url(), DevAccount::Creator.key(), node.address()).await.unwrap();
    let fee = U256::from(1_000_000_000_000_000u64);
    creator.deposit(fee * U256::from(3)).await.unwrap();
    assert_eq!(creator.funds_of(creator.sender().unwrap()).await.unwrap(), fee * U256::from(3));

    let mut request = request(1, in_an_hour());
    request.fee = fee;
    let (creator_signature, attestation, node_signature) = signed(&node, &request, &operator);
    node.mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    assert_eq!(node.funds_of(request.creator).await.unwrap(), fee * U256::from(2));
    assert_eq!(node.funds_of(operator.address()).await.unwrap(), fee);

    node.withdraw(fee).await.unwrap();
    assert_eq!(node.funds_of(operator.address()).await.unwrap(), U256::ZERO);
    let result = node.withdraw(U256::from(1)).await;
    assert!(matches!(rejection(result), ContractRejection::InsufficientFunds { .. }));
    anvil.stop().await.unwrap();
}

#[tokio::test]
async fn jobs_ready_together_mint_in_one_batch_and_a_refused_batch_falls_back_to_single_mints() {
    let Devnet { anvil, node, .. } = devnet().await;
    let operator = DevAccount::NodeOperator.key();
    let job = |nonce| {
        let request = request(nonce, in_an_hour());
        let (creator_signature, attestation, node_signature) = signed(&node, &request, &operator);
        MintJob { request, creator_signature, attestation, node_signature }
    };

    // Three jobs handed to the batcher at once leave in one transaction.
    let tasks = genmint_node::lifecycle::Tasks::default();
    let batcher = MintBatcher::spawn(node.clone(), &tasks);
    let jobs = [job(1), job(2), job(3)];
    let pending = futures_util::future::join_all(jobs.iter().cloned().map(|j| batcher.send(j))).await;
    let pending: Vec<_> = pending.into_iter().map(Result::unwrap).collect();
    assert!(pending.iter().all(|p| p.tx_hash == pending[0].tx_hash), "one transaction: {pending:?}");
    for (job, pending) in jobs.iter().zip(&pending) {
        let outcome = node.receipt_for(pending.tx_hash, pending.token_id).await.unwrap();
        assert_eq!(node.owner_of(outcome.token_id).await.unwrap(), Some(job.request.creator));
        let event = node.minted_event(outcome.token_id).await.unwrap().unwrap();
        assert!(node.verify_aigc(&job.request, &event.aigc_data, &event.proof).await.unwrap());
    }

    // A batch holding a replay is refused as a whole; the batcher then mints the others one by one
    // and reports the replay's own refusal.
    let fresh = [job(4), job(5)];
    let results = futures_util::future::join_all(
        [fresh[0].clone(), jobs[0].clone(), fresh[1].clone()].into_iter().map(|j| batcher.send(j)),
    )
    .await;
    let minted = results[0].as_ref().unwrap();
    assert_eq!(
        results[1].as_ref().unwrap_err().rejection(),
        Some(&ContractRejection::AlreadyMinted { token_id: pending[0].token_id })
    );
    let also = results[2].as_ref().unwrap();
    assert_ne!(minted.tx_hash, also.tx_hash, "sent one by one");
    for p in [minted, also] {
        node.receipt_for(p.tx_hash, p.token_id).await.unwrap();
    }
    anvil.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_with_several_endpoints_goes_on_through_the_next_when_the_first_is_down() {
    let net = devnet().await;
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}", down.local_addr().unwrap());
    drop(down); // nothing listens there now
    let urls = [down_url.clone(), net.anvil.rpc_url().to_owned()];
    let operator = DevAccount::NodeOperator.key();
    let client = ChainClient::connect_failover(&urls, operator.clone(), net.node.address()).await.unwrap();
    assert!(client.is_node(operator.address()).await.unwrap(), "read through the second endpoint");
    client.deposit(U256::from(5)).await.unwrap();
    assert_eq!(client.funds_of(operator.address()).await.unwrap(), U256::from(5), "sent through it too");
    // With every endpoint down, the error says the RPC cannot be reached and names them.
    let err = ChainClient::connect_failover(&urls[..1], operator, net.node.address()).await.unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&down_url), "{err}");
}
