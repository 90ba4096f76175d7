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
    ChainClient, ChainError, ContractRejection, FeePolicy, MintBatcher, MintJob, Replacement,
    abi_encode_request,
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

const GWEI: u128 = 1_000_000_000;

/// A raw JSON-RPC call to anvil (its own methods, automine and the base fee).
async fn anvil_rpc(anvil: &Anvil, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    use alloy::providers::Provider;
    let rpc = alloy::providers::ProviderBuilder::new().connect_http(anvil.rpc_url().parse().unwrap());
    rpc.raw_request::<_, serde_json::Value>(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Makes the next block's base fee `wei` and mines it, so the latest base fee is `wei`.
async fn set_base_fee(anvil: &Anvil, wei: u128) {
    anvil_rpc(anvil, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([format!("{wei:#x}")])).await;
    anvil_rpc(anvil, "evm_mine", serde_json::json!([])).await;
}

async fn transaction(anvil: &Anvil, tx_hash: B256) -> serde_json::Value {
    anvil_rpc(anvil, "eth_getTransactionByHash", serde_json::json!([tx_hash])).await
}

fn wei(value: &serde_json::Value) -> u128 {
    u128::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test]
async fn mints_wait_while_gas_is_dearer_than_the_ceiling_and_go_under_it() {
    let net = devnet().await;
    let ceiling = FeePolicy { max_fee_per_gas: Some(10 * GWEI), priority_fee_per_gas: GWEI };
    let node = net.node.clone().with_fee_policy(ceiling).with_receipt_timeout(Duration::from_secs(10));
    let operator = DevAccount::NodeOperator.key();
    let request = request(40, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &request, &operator);

    set_base_fee(&net.anvil, 50 * GWEI).await;
    let dear = node.send_mint(&request, &creator_signature, &attestation, &node_signature).await;
    let Err(error) = dear else { panic!("sent above the ceiling: {dear:?}") };
    assert!(matches!(error, ChainError::FeeAboveCeiling { ceiling, .. } if ceiling == 10 * GWEI), "{error}");
    assert!(!error.is_permanent(), "a reason to wait: {error}");

    set_base_fee(&net.anvil, 2 * GWEI).await;
    let pending = node.send_mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    let sent = transaction(&net.anvil, pending.tx_hash).await;
    assert_eq!(wei(&sent["maxFeePerGas"]), 5 * GWEI, "twice the base fee plus the tip, under the ceiling");
    assert_eq!(wei(&sent["maxPriorityFeePerGas"]), GWEI);
    node.receipt_for(pending.tx_hash, pending.token_id).await.unwrap();
}

#[tokio::test]
async fn a_stuck_mint_is_re_priced_by_at_least_ten_percent_and_an_expired_one_frees_its_nonce() {
    let net = devnet().await;
    let operator = DevAccount::NodeOperator.key();
    let node = net.node.clone().with_receipt_timeout(Duration::from_secs(10));
    anvil_rpc(&net.anvil, "evm_setAutomine", serde_json::json!([false])).await;

    let request = request(50, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &request, &operator);
    let stuck = node.send_mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    let old = transaction(&net.anvil, stuck.tx_hash).await;
    let repriced = node.replace(stuck.tx_hash, Replacement::SameCall).await.unwrap().expect("pending");
    assert_ne!(repriced, stuck.tx_hash);
    assert_eq!(node.replace(stuck.tx_hash, Replacement::SameCall).await.unwrap(), Some(repriced), "once");
    let new = transaction(&net.anvil, repriced).await;
    assert_eq!(new["nonce"], old["nonce"], "the same nonce");
    assert_eq!(new["input"], old["input"], "the same call");
    for fee in ["maxFeePerGas", "maxPriorityFeePerGas"] {
        assert!(wei(&new[fee]) * 100 >= wei(&old[fee]) * 110, "{fee}: {} -> {}", old[fee], new[fee]);
    }
    assert!(!node.transaction_known(stuck.tx_hash).await.unwrap(), "the pool dropped the cheaper one");
    anvil_rpc(&net.anvil, "evm_mine", serde_json::json!([])).await;
    let outcome = node.receipt_for(repriced, stuck.token_id).await.unwrap();
    assert_eq!(node.owner_of(outcome.token_id).await.unwrap(), Some(request.creator));

    // A mint nobody wants any more (its request expired) gives its nonce to a transfer.
    let doomed = self::request(51, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&node, &doomed, &operator);
    let pending = node.send_mint(&doomed, &creator_signature, &attestation, &node_signature).await.unwrap();
    let transfer = node.replace(pending.tx_hash, Replacement::Transfer).await.unwrap().expect("pending");
    anvil_rpc(&net.anvil, "evm_mine", serde_json::json!([])).await;
    let mined = transaction(&net.anvil, transfer).await;
    assert_eq!(mined["to"].as_str().unwrap().to_lowercase(), operator.address().to_string().to_lowercase());
    assert_eq!((mined["value"].as_str(), mined["input"].as_str()), (Some("0x0"), Some("0x")));
    assert!(mined["blockNumber"].is_string(), "mined: {mined}");
    assert!(!node.token_exists(pending.token_id).await.unwrap(), "the mint never happened");
}

#[tokio::test]
async fn nonces_stay_right_across_concurrent_sends_a_dropped_transaction_and_a_restart() {
    let net = devnet().await;
    let operator = DevAccount::NodeOperator.key();
    let nonce = |anvil: &Anvil| {
        let url = anvil.rpc_url().to_owned();
        async move {
            use alloy::providers::Provider;
            let rpc = alloy::providers::ProviderBuilder::new().connect_http(url.parse().unwrap());
            rpc.get_transaction_count(DevAccount::NodeOperator.key().address()).await.unwrap()
        }
    };
    let before = nonce(&net.anvil).await;
    // Eight sends at once from one key: eight nonces, none reused, none skipped.
    let sends = (0..8).map(|_| {
        let node = net.node.clone();
        async move { node.deposit(U256::from(1)).await }
    });
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    assert_eq!(nonce(&net.anvil).await, before + 8);

    // A transaction the mempool drops leaves no gap: the next send takes its nonce.
    anvil_rpc(&net.anvil, "evm_setAutomine", serde_json::json!([false])).await;
    let request = request(60, in_an_hour());
    let (creator_signature, attestation, node_signature) = signed(&net.node, &request, &operator);
    let dropped =
        net.node.send_mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    anvil_rpc(&net.anvil, "anvil_dropTransaction", serde_json::json!([dropped.tx_hash])).await;
    assert!(!net.node.transaction_known(dropped.tx_hash).await.unwrap());
    // And a client started anew (a restart) with nothing in memory goes on from the chain.
    let restarted =
        ChainClient::connect(net.anvil.rpc_url(), operator.clone(), net.node.address()).await.unwrap();
    let again =
        restarted.send_mint(&request, &creator_signature, &attestation, &node_signature).await.unwrap();
    assert_eq!(
        transaction(&net.anvil, again.tx_hash).await["nonce"],
        serde_json::json!(format!("{:#x}", before + 8))
    );
    anvil_rpc(&net.anvil, "evm_mine", serde_json::json!([])).await;
    restarted.receipt_for(again.tx_hash, again.token_id).await.unwrap();
    assert_eq!(nonce(&net.anvil).await, before + 9);
}
