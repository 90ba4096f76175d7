//! [`ChainClient`]: one deployed `GenmintNFT` behind one HTTP RPC endpoint (or several, with
//! failover, for a signing client), with or without a signing key. Connecting checks that the RPC answers and that the contract exists, so a wrong
//! URL or address fails at startup with a message that says which.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::ReceiptResponse;
use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use alloy::transports::http::reqwest;

use super::bindings::GenmintNFT::{self, GenmintNFTInstance};
use super::error::{ChainError, ContractRejection};
use super::failover::Failover;
use super::fees::{FeePolicy, Fees};
use crate::provenance::eip712::{self, Attestation, GenerationRequest};

/// Bound on one RPC round trip.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on waiting for a transaction's receipt.
const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a pending transaction's receipt is polled.
const RECEIPT_POLL: Duration = Duration::from_millis(250);

/// Gas of a plain transfer.
const TRANSFER_GAS: u64 = 21_000;

/// What takes a stuck transaction's place in [`ChainClient::replace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// The same call, dearer: it is still wanted.
    SameCall,
    /// A 0-value transfer to the sender: the call is no longer wanted (its request expired), and
    /// the nonce must be used so later transactions can go.
    Transfer,
}

/// A client for one `GenmintNFT` contract.
#[derive(Clone)]
pub struct ChainClient {
    pub(super) contract: GenmintNFTInstance<DynProvider>,
    pub(super) rpc_url: String,
    chain_id: u64,
    sender: Option<Address>,
    /// Serialises nonce assignment and submission, so concurrent sends from one key never reuse a
    /// nonce; waiting for receipts happens outside it.
    send_lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) receipt_timeout: Duration,
    pub(super) fees: FeePolicy,
    /// Stuck transactions this client replaced, by hash, with their replacement: the jobs of one
    /// batch share a transaction, and the first to re-price it re-prices it for all.
    replaced: Arc<std::sync::Mutex<HashMap<B256, B256>>>,
}

impl fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainClient")
            .field("rpc_url", &self.rpc_url)
            .field("chain_id", &self.chain_id)
            .field("contract", self.contract.address())
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// The creator royalty rate a deployment starts with, in basis points (5%).
pub const DEFAULT_ROYALTY_BPS: u16 = 500;

/// A registered model as the contract records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    pub author: String,
    pub license_uri: String,
    pub active: bool,
}

/// What the contract stores for a token. The rest of its provenance is the token id itself (the
/// request digest) and the mint's `AigcData` event ([`super::MintedEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub creator: Address,
    pub node: Address,
    pub mint_block: u64,
    pub metadata_cid: String,
}

impl From<GenmintNFT::Record> for Provenance {
    fn from(record: GenmintNFT::Record) -> Self {
        Self {
            creator: record.creator,
            node: record.node,
            mint_block: record.mintBlock,
            metadata_cid: record.metadataCid,
        }
    }
}

/// A new `GenmintNFT` on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub address: Address,
    pub tx_hash: B256,
    pub block_number: u64,
    /// The deployment block's timestamp, unix seconds.
    pub timestamp: u64,
    pub owner: Address,
    pub royalty_bps: u16,
}

impl ChainClient {
    /// Connects with a signing key, for registering and minting. The key pays gas.
    pub async fn connect(
        rpc_url: &str,
        signer: PrivateKeySigner,
        contract: Address,
    ) -> Result<Self, ChainError> {
        Self::connect_failover(&[rpc_url.to_owned()], signer, contract).await
    }

    /// Connects with a signing key through several RPC endpoints of the same chain, in order of
    /// preference: a request the endpoint in use cannot serve goes to the next ([`Failover`]).
    pub async fn connect_failover(
        rpc_urls: &[String],
        signer: PrivateKeySigner,
        contract: Address,
    ) -> Result<Self, ChainError> {
        let sender = signer.address();
        let provider = signing_provider(rpc_urls, signer)?;
        Self::attach(&rpc_urls.join(", "), provider, contract, Some(sender)).await
    }

    /// Connects without a key, for reading and verifying.
    pub async fn connect_read_only(rpc_url: &str, contract: Address) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new().connect_reqwest(http_client()?, parse_url(rpc_url)?);
        Self::attach(rpc_url, provider.erased(), contract, None).await
    }

    /// Deploys a new `GenmintNFT` owned by `signer`, with the default royalty rate, and returns its
    /// address (local development and tests; [`Self::deploy_with`] for the rest).
    pub async fn deploy(rpc_url: &str, signer: PrivateKeySigner) -> Result<Address, ChainError> {
        let owner = signer.address();
        Ok(Self::deploy_with(rpc_url, signer, owner, DEFAULT_ROYALTY_BPS).await?.address)
    }

    /// Deploys a new `GenmintNFT` from `signer` (who pays), owned by `owner`, with a creator royalty
    /// of `royalty_bps` basis points (at most 1000), and waits for it to be mined.
    pub async fn deploy_with(
        rpc_url: &str,
        signer: PrivateKeySigner,
        owner: Address,
        royalty_bps: u16,
    ) -> Result<Deployment, ChainError> {
        let provider = signing_provider(&[rpc_url.to_owned()], signer)?;
        let pending = GenmintNFT::deploy_builder(provider.clone(), owner, U96::from(royalty_bps))
            .send()
            .await
            .map_err(|e| ChainError::from_contract("deploy", rpc_url, e))?;
        let tx_hash = *pending.tx_hash();
        let receipt = wait_for_receipt(&provider, rpc_url, tx_hash, DEFAULT_RECEIPT_TIMEOUT).await?;
        ensure_success(&receipt)?;
        let address = receipt.contract_address().ok_or_else(|| ChainError::UnexpectedReceipt {
            tx_hash,
            detail: "the deployment receipt names no contract address".into(),
        })?;
        let block_number = receipt.block_number().unwrap_or_default();
        let timestamp = provider
            .get_block_by_number(block_number.into())
            .await
            .map_err(|e| ChainError::from_transport("eth_getBlockByNumber", rpc_url, e))?
            .map(|block| block.header.timestamp)
            .unwrap_or_default();
        tracing::info!(%address, %owner, %tx_hash, block_number, "deployed GenmintNFT");
        Ok(Deployment { address, tx_hash, block_number, timestamp, owner, royalty_bps })
    }

    async fn attach(
        rpc_url: &str,
        provider: DynProvider,
        contract: Address,
        sender: Option<Address>,
    ) -> Result<Self, ChainError> {
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::from_transport("eth_chainId", rpc_url, e))?;
        let code = provider
            .get_code_at(contract)
            .await
            .map_err(|e| ChainError::from_transport("eth_getCode", rpc_url, e))?;
        if code.is_empty() {
            return Err(ChainError::NoContract { address: contract, chain_id });
        }
        Ok(Self {
            contract: GenmintNFT::new(contract, provider),
            rpc_url: rpc_url.to_owned(),
            chain_id,
            sender,
            send_lock: Arc::new(tokio::sync::Mutex::new(())),
            receipt_timeout: DEFAULT_RECEIPT_TIMEOUT,
            fees: FeePolicy::default(),
            replaced: Arc::default(),
        })
    }

    /// The same client with another bound on waiting for receipts.
    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// The same client paying gas under another fee policy.
    pub fn with_fee_policy(mut self, fees: FeePolicy) -> Self {
        self.fees = fees;
        self
    }

    /// The chain id the RPC reported when connecting.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The account that signs transactions, if any.
    pub fn sender(&self) -> Option<Address> {
        self.sender
    }

    /// The RPC endpoint.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// The EIP-712 domain requests and attestations for this contract are signed under.
    pub fn domain(&self) -> Eip712Domain {
        eip712::domain(self.chain_id, self.address())
    }

    /// Allows `operator` to attest mints (owner only).
    pub async fn register_node(&self, operator: Address) -> Result<(), ChainError> {
        let receipt = self.transact("registerNode", self.contract.registerNode(operator)).await?;
        tracing::info!(%operator, tx_hash = %receipt.transaction_hash(), "registered node");
        Ok(())
    }

    /// Stops `operator` from attesting (owner only).
    pub async fn deactivate_node(&self, operator: Address) -> Result<(), ChainError> {
        let receipt = self.transact("deactivateNode", self.contract.deactivateNode(operator)).await?;
        tracing::info!(%operator, tx_hash = %receipt.transaction_hash(), "deactivated node");
        Ok(())
    }

    /// Records a model hash with its name, author and licence URI (owner only).
    pub async fn register_model(
        &self,
        model_hash: B256,
        name: &str,
        author: &str,
        license_uri: &str,
    ) -> Result<(), ChainError> {
        let call = self.contract.registerModel(
            model_hash,
            name.to_owned(),
            author.to_owned(),
            license_uri.to_owned(),
        );
        let receipt = self.transact("registerModel", call).await?;
        tracing::info!(%model_hash, name, tx_hash = %receipt.transaction_hash(), "registered model");
        Ok(())
    }

    /// Whether `operator` is a registered, active node.
    pub async fn is_node(&self, operator: Address) -> Result<bool, ChainError> {
        self.is_node_at(operator, None).await
    }

    /// Whether `model_hash` is a registered, active model.
    pub async fn is_model(&self, model_hash: B256) -> Result<bool, ChainError> {
        self.contract.isModel(model_hash).call().await.map_err(|e| self.call_error("isModel", e))
    }

    /// What the registry records for a model (empty and inactive if it was never registered).
    pub async fn model_info(&self, model_hash: B256) -> Result<ModelInfo, ChainError> {
        self.model_info_at(model_hash, None).await
    }

    /// Adds `amount` wei to the sender's deposit, from which its requests' fees are paid.
    pub async fn deposit(&self, amount: U256) -> Result<(), ChainError> {
        let receipt = self.transact("deposit", self.contract.deposit().value(amount)).await?;
        tracing::info!(%amount, tx_hash = %receipt.transaction_hash(), "deposited");
        Ok(())
    }

    /// Sends `amount` wei of the sender's funds (unused deposit and earned fees) to the sender.
    pub async fn withdraw(&self, amount: U256) -> Result<(), ChainError> {
        let receipt = self.transact("withdraw", self.contract.withdraw(amount)).await?;
        tracing::info!(%amount, tx_hash = %receipt.transaction_hash(), "withdrew");
        Ok(())
    }

    /// An account's funds in wei: unused deposit plus earned fees.
    pub async fn funds_of(&self, account: Address) -> Result<U256, ChainError> {
        self.contract.fundsOf(account).call().await.map_err(|e| self.call_error("fundsOf", e))
    }

    /// The contract's EIP-712 digest of a request (equals [`eip712::request_digest`] under
    /// [`Self::domain`]).
    pub async fn hash_request(&self, request: &GenerationRequest) -> Result<B256, ChainError> {
        self.contract.hashRequest(request.into()).call().await.map_err(|e| self.call_error("hashRequest", e))
    }

    /// The contract's EIP-712 digest of an attestation.
    pub async fn hash_attestation(&self, attestation: &Attestation) -> Result<B256, ChainError> {
        self.contract
            .hashAttestation(attestation.into())
            .call()
            .await
            .map_err(|e| self.call_error("hashAttestation", e))
    }

    /// The contract's ERC-7007 `verify`: whether `aigc_data` and `proof` (as the mint's `AigcData`
    /// event carries them) are the minted outputs of `request`, signed by its creator and node.
    pub async fn verify_aigc(
        &self,
        request: &GenerationRequest,
        aigc_data: &Bytes,
        proof: &Bytes,
    ) -> Result<bool, ChainError> {
        let prompt = Bytes::from(super::bindings::abi_encode_request(request));
        self.contract
            .verify(prompt, aigc_data.clone(), proof.clone())
            .call()
            .await
            .map_err(|e| self.call_error("verify", e))
    }

    /// The token's owner, or `None` if the token does not exist.
    pub async fn owner_of(&self, token_id: U256) -> Result<Option<Address>, ChainError> {
        let owner = self.contract.ownerOf(token_id).call().await;
        none_if_nonexistent(owner.map_err(|e| self.call_error("ownerOf", e)))
    }

    /// Whether the token has been minted.
    pub async fn token_exists(&self, token_id: U256) -> Result<bool, ChainError> {
        Ok(self.owner_of(token_id).await?.is_some())
    }

    /// The token's provenance record, or `None` if the token does not exist.
    pub async fn provenance(&self, token_id: U256) -> Result<Option<Provenance>, ChainError> {
        let record = self.contract.provenance(token_id).call().await;
        Ok(none_if_nonexistent(record.map_err(|e| self.call_error("provenance", e)))?.map(Into::into))
    }

    /// The token's metadata URI (`ipfs://<metadata CID>`), or `None` if the token does not exist.
    pub async fn token_uri(&self, token_id: U256) -> Result<Option<String>, ChainError> {
        let uri = self.contract.tokenURI(token_id).call().await;
        none_if_nonexistent(uri.map_err(|e| self.call_error("tokenURI", e)))
    }

    pub(super) fn call_error(&self, call: &'static str, error: alloy::contract::Error) -> ChainError {
        ChainError::from_contract(call, &self.rpc_url, error)
    }

    /// Submits a transaction (the gas estimate surfaces reverts as typed rejections before
    /// anything is sent) and returns its hash.
    pub(super) async fn submit<D: CallDecoder>(
        &self,
        call: &'static str,
        builder: CallBuilder<&DynProvider, D>,
    ) -> Result<B256, ChainError> {
        if self.sender.is_none() {
            return Err(ChainError::ReadOnly);
        }
        let fees = self.fees.fees_for(self.base_fee().await?)?;
        let builder = builder
            .max_fee_per_gas(fees.max_fee_per_gas)
            .max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let _nonce_guard = self.send_lock.lock().await;
        let pending = builder.send().await.map_err(|e| self.call_error(call, e))?;
        Ok(*pending.tx_hash())
    }

    /// The latest block's base fee per gas (0 on a chain without EIP-1559).
    async fn base_fee(&self) -> Result<u128, ChainError> {
        let block = self
            .contract
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| ChainError::from_transport("eth_getBlockByNumber", &self.rpc_url, e))?;
        Ok(block.and_then(|b| b.header.base_fee_per_gas).map(u128::from).unwrap_or_default())
    }

    /// Sends a stuck transaction again with the same nonce and its fees raised
    /// ([`FeePolicy::bumped`]), or, with `Replacement::Transfer`, a 0-value transfer to the sender
    /// in its place, which frees the nonce for the transactions after it. Returns the new hash, or
    /// `None` when the transaction is not pending (mined, or unknown). A transaction replaced
    /// before by this client is not replaced twice: its replacement's hash comes back.
    pub async fn replace(&self, tx_hash: B256, with: Replacement) -> Result<Option<B256>, ChainError> {
        let Some(sender) = self.sender else { return Err(ChainError::ReadOnly) };
        if let Some(replacement) = self.replacement_of(tx_hash) {
            return Ok(Some(replacement));
        }
        let provider = self.contract.provider();
        let tx = provider
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(|e| ChainError::from_transport("eth_getTransactionByHash", &self.rpc_url, e))?;
        let Some(tx) = tx.filter(|tx| tx.block_number.is_none()) else { return Ok(None) };
        let old = Fees {
            max_fee_per_gas: tx.max_fee_per_gas(),
            max_priority_fee_per_gas: tx.max_priority_fee_per_gas().unwrap_or_else(|| tx.max_fee_per_gas()),
        };
        let fees = self.fees.bumped(old, self.base_fee().await?)?;
        let request = TransactionRequest::default()
            .from(sender)
            .nonce(tx.nonce())
            .max_fee_per_gas(fees.max_fee_per_gas)
            .max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let request = match with {
            Replacement::SameCall => request
                .to(tx.to().unwrap_or_default())
                .input(tx.input().clone().into())
                .value(tx.value())
                .gas_limit(tx.gas_limit()),
            Replacement::Transfer => request.to(sender).value(U256::ZERO).gas_limit(TRANSFER_GAS),
        };
        let _nonce_guard = self.send_lock.lock().await;
        let pending = provider
            .send_transaction(request)
            .await
            .map_err(|e| ChainError::from_transport("eth_sendTransaction", &self.rpc_url, e))?;
        let replacement = *pending.tx_hash();
        self.replaced.lock().unwrap_or_else(|p| p.into_inner()).insert(tx_hash, replacement);
        tracing::warn!(%tx_hash, %replacement, nonce = tx.nonce(), ?with, max_fee_per_gas = fees.max_fee_per_gas, "replaced a stuck transaction");
        Ok(Some(replacement))
    }

    /// The newest replacement of `tx_hash` this client sent, if any.
    fn replacement_of(&self, tx_hash: B256) -> Option<B256> {
        let replaced = self.replaced.lock().unwrap_or_else(|p| p.into_inner());
        let mut newest = *replaced.get(&tx_hash)?;
        while let Some(next) = replaced.get(&newest) {
            newest = *next;
        }
        Some(newest)
    }

    /// Submits a transaction and waits for its successful receipt.
    pub(super) async fn transact<D: CallDecoder>(
        &self,
        call: &'static str,
        builder: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt, ChainError> {
        let tx_hash = self.submit(call, builder).await?;
        let receipt =
            wait_for_receipt(self.contract.provider(), &self.rpc_url, tx_hash, self.receipt_timeout).await?;
        ensure_success(&receipt)?;
        Ok(receipt)
    }
}

/// Polls for a receipt until `timeout`.
pub(super) async fn wait_for_receipt(
    provider: &DynProvider,
    rpc_url: &str,
    tx_hash: B256,
    timeout: Duration,
) -> Result<TransactionReceipt, ChainError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(receipt) = find_receipt(provider, rpc_url, tx_hash).await? {
            return Ok(receipt);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ChainError::ReceiptTimeout { tx_hash, waited: timeout });
        }
        tokio::time::sleep(RECEIPT_POLL).await;
    }
}

/// The receipt, if the transaction has been mined.
pub(super) async fn find_receipt(
    provider: &DynProvider,
    rpc_url: &str,
    tx_hash: B256,
) -> Result<Option<TransactionReceipt>, ChainError> {
    provider
        .get_transaction_receipt(tx_hash)
        .await
        .map_err(|e| ChainError::from_transport("eth_getTransactionReceipt", rpc_url, e))
}

pub(super) fn ensure_success(receipt: &TransactionReceipt) -> Result<(), ChainError> {
    if receipt.status() {
        Ok(())
    } else {
        Err(ChainError::Reverted {
            tx_hash: receipt.transaction_hash(),
            block_number: receipt.block_number().unwrap_or_default(),
        })
    }
}

/// Views on a token revert with `ERC721NonexistentToken` when it was never minted.
fn none_if_nonexistent<T>(result: Result<T, ChainError>) -> Result<Option<T>, ChainError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ChainError::Rejected { reason: ContractRejection::NonexistentToken { .. } }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A provider that estimates gas, signs with `signer` and fills the nonce from the node's pending
/// transaction count on every send. (alloy's default nonce cache hands out a nonce even when the
/// gas estimate then fails on a revert, which would leave a gap that stalls every later
/// transaction; [`ChainClient`] serialises sends instead.)
fn signing_provider(rpc_urls: &[String], signer: PrivateKeySigner) -> Result<DynProvider, ChainError> {
    let urls = rpc_urls.iter().map(|url| parse_url(url)).collect::<Result<Vec<_>, _>>()?;
    let transport = Failover::new(http_client()?, urls).ok_or_else(|| ChainError::BadRpcUrl {
        url: String::new(),
        reason: "no RPC endpoint is configured".into(),
    })?;
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(signer)
        .connect_client(RpcClient::new(transport, false));
    Ok(provider.erased())
}

fn parse_url(rpc_url: &str) -> Result<reqwest::Url, ChainError> {
    rpc_url
        .parse::<reqwest::Url>()
        .map_err(|e| ChainError::BadRpcUrl { url: rpc_url.to_owned(), reason: e.to_string() })
}

fn http_client() -> Result<reqwest::Client, ChainError> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| ChainError::Rpc { call: "create HTTP client", detail: e.to_string() })
}
