//! Test doubles for the traits spot checks own, and a token another node minted with this node's
//! model (its metadata in an in-memory content store, its record and mint event in a fake chain).
//! Unit tests only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use futures_util::future::BoxFuture;
use genmint_model_runtime::Rgb8Image;
use genmint_model_runtime::trace::{LatentTrace, TRACE_FORMAT};
use genmint_p2p::NetworkError;
use genmint_p2p::spot_check::{SpotCheck, SpotCheckTicket, Verdict};

use super::{SpotCheckChain, SpotCheckNetwork, SpotCheckParts, SpotCheckStore};
use crate::chain::{ChainError, MintedEvent, Provenance};
use crate::config::SpotChecksConfig;
use crate::db::Database;
use crate::ipfs::{ContentStore, MemoryStore};
use crate::jobs::testing::{MODEL, descriptor, lock, served_fake};
use crate::jobs::{JobStore, Models};
use crate::provenance::eip712::{domain, request_digest, sign_request};
use crate::provenance::metadata::{
    Envelope, LatentTraceRecord, MetadataInput, PROVENANCE_VERSION, Provenance as MetadataProvenance,
    TokenMetadata,
};

/// The gossip in memory: what was published and judged, and who is registered.
#[derive(Default)]
pub(crate) struct FakeSpotNetwork {
    pub published: Mutex<Vec<SpotCheck>>,
    pub verdicts: Mutex<Vec<Verdict>>,
    pub registered: Mutex<HashSet<Address>>,
}

impl SpotCheckNetwork for FakeSpotNetwork {
    fn publish(&self, check: SpotCheck) -> BoxFuture<'_, Result<(), NetworkError>> {
        lock(&self.published).push(check);
        Box::pin(async { Ok(()) })
    }

    fn judge(&self, _ticket: SpotCheckTicket, verdict: Verdict) -> BoxFuture<'_, Result<(), NetworkError>> {
        lock(&self.verdicts).push(verdict);
        Box::pin(async { Ok(()) })
    }

    fn is_registered(&self, operator: Address) -> BoxFuture<'_, bool> {
        let registered = lock(&self.registered).contains(&operator);
        Box::pin(async move { registered })
    }
}

/// The chain in memory: recent mints, their records and mint events; or down.
#[derive(Default)]
pub(crate) struct FakeSpotChain {
    pub recent: Mutex<Vec<U256>>,
    pub records: Mutex<HashMap<U256, Provenance>>,
    pub events: Mutex<HashMap<U256, MintedEvent>>,
    pub down: Mutex<bool>,
    /// Tokens with an open dispute, and the votes this node cast on them.
    pub disputed: Mutex<Vec<U256>>,
    pub votes: Mutex<Vec<(U256, B256)>>,
}

impl FakeSpotChain {
    fn answer<T: Send + 'static>(&self, value: T) -> BoxFuture<'static, Result<T, ChainError>> {
        let down = *lock(&self.down);
        Box::pin(async move {
            if down {
                Err(ChainError::Unreachable { url: "fake".into(), detail: "down".into() })
            } else {
                Ok(value)
            }
        })
    }
}

impl SpotCheckChain for FakeSpotChain {
    fn recently_minted(&self, _blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>> {
        self.answer(lock(&self.recent).clone())
    }

    fn provenance(&self, token_id: U256) -> BoxFuture<'_, Result<Option<Provenance>, ChainError>> {
        self.answer(lock(&self.records).get(&token_id).cloned())
    }

    fn minted_event(&self, token_id: U256) -> BoxFuture<'_, Result<Option<MintedEvent>, ChainError>> {
        self.answer(lock(&self.events).get(&token_id).cloned())
    }

    fn recently_disputed(&self, _blocks: u64) -> BoxFuture<'_, Result<Vec<U256>, ChainError>> {
        self.answer(lock(&self.disputed).clone())
    }

    fn vote_if_disputed(&self, token_id: U256, digest: B256) -> BoxFuture<'_, Result<bool, ChainError>> {
        // The contract takes one vote per node and dispute.
        let open = lock(&self.disputed).contains(&token_id)
            && !lock(&self.votes).iter().any(|(t, _)| *t == token_id);
        if open {
            lock(&self.votes).push((token_id, digest));
        }
        self.answer(open)
    }
}

/// Spot-check parts over fakes, for a node whose operator is `operator`.
pub(crate) struct Bench {
    pub parts: Arc<SpotCheckParts<MemoryStore>>,
    pub network: Arc<FakeSpotNetwork>,
    pub chain: Arc<FakeSpotChain>,
    pub _dir: tempfile::TempDir,
}

impl Bench {
    pub fn new() -> Self {
        Self::checking(SpotChecksConfig::default())
    }

    /// A bench whose checker checks as `spot_checks` says.
    pub fn checking(spot_checks: SpotChecksConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("jobs.sqlite")).unwrap();
        let (network, chain) = (Arc::new(FakeSpotNetwork::default()), Arc::new(FakeSpotChain::default()));
        let contract = Address::repeat_byte(0xc0);
        let parts = Arc::new(SpotCheckParts {
            network: network.clone(),
            chain: chain.clone(),
            content: MemoryStore::default(),
            checks: SpotCheckStore::new(db.clone()).unwrap(),
            jobs: JobStore::new(db).unwrap(),
            models: Models::new(vec![served_fake(descriptor())], None),
            operator: PrivateKeySigner::random(),
            domain: domain(31337, contract),
            chain_id: 31337,
            contract,
            spot_checks,
        });
        Self { parts, network, chain, _dir: dir }
    }

    /// A token `minted_by` minted for a request with `seed`, attesting `pixels`; returns its id.
    pub async fn mint(&self, minted_by: Address, seed: u64, model: B256, pixels: &Rgb8Image) -> U256 {
        self.mint_traced(minted_by, seed, model, pixels, None).await
    }

    /// [`Self::mint`], the metadata committing to `trace` (pinned here) when given.
    pub async fn mint_traced(
        &self,
        minted_by: Address,
        seed: u64,
        model: B256,
        pixels: &Rgb8Image,
        trace: Option<&LatentTrace>,
    ) -> U256 {
        let latent_trace = match trace {
            Some(trace) => {
                let bytes = trace.to_bytes().unwrap();
                let size = bytes.len() as u64;
                Some(LatentTraceRecord {
                    format: TRACE_FORMAT.into(),
                    cid: self.parts.content.add_and_pin(bytes).await.unwrap().to_string(),
                    merkle_root: trace.root().unwrap(),
                    steps: trace.steps(),
                    bytes: size,
                })
            }
            None => None,
        };
        let creator = PrivateKeySigner::random();
        let request = crate::jobs::testing::request(creator.address(), model, seed);
        let digest = request_digest(&request, &self.parts.domain);
        let token = U256::from_be_bytes(digest.0);
        let image = crate::provenance::png::encode(pixels).unwrap();
        let image_cid = self.parts.content.add_and_pin(image).await.unwrap();
        let model_descriptor = descriptor();
        let provenance = MetadataProvenance {
            version: PROVENANCE_VERSION,
            chain_id: 31337,
            contract: self.parts.contract.to_checksum(None),
            request: serde_json::to_value(&request).unwrap(),
            creator_signature: sign_request(&creator, &request, &self.parts.domain).unwrap().to_string(),
            request_digest: digest.to_string(),
            model_hash: model.to_string(),
            model_name: model_descriptor.name.clone(),
            pixel_digest: B256::from(pixels.pixel_digest()).to_string(),
            image_cid: image_cid.to_string(),
            width: 8,
            height: 8,
            node: minted_by.to_checksum(None),
            envelope: Envelope {
                engine: model_descriptor.envelope.engine.clone(),
                noise: model_descriptor.envelope.noise.clone(),
                scheduler: "ddim".into(),
                steps: 2,
                guidance: 3.0,
                dtype: model_descriptor.envelope.dtype.clone(),
                device_class: model_descriptor.envelope.device_class.clone(),
            },
            watermark: None,
            latent_trace,
        };
        let metadata = TokenMetadata::new(MetadataInput {
            prompt: &request.prompt,
            seed,
            external_url: None,
            provenance,
        });
        let metadata_cid = self.parts.content.add_and_pin(metadata.to_bytes().unwrap()).await.unwrap();
        let record = Provenance {
            creator: creator.address(),
            node: minted_by,
            mint_block: 1,
            metadata_cid: metadata_cid.to_string(),
        };
        let event = MintedEvent {
            token_id: token,
            prompt_hash: B256::ZERO,
            pixel_digest: B256::from(pixels.pixel_digest()),
            image_cid: image_cid.to_string(),
            node_signature: Bytes::new(),
            creator_signature: Bytes::new(),
            aigc_data: Bytes::new(),
            proof: Bytes::new(),
            tx_hash: B256::ZERO,
            block_number: 1,
        };
        lock(&self.chain.recent).push(token);
        lock(&self.chain.records).insert(token, record);
        lock(&self.chain.events).insert(token, event);
        token
    }
}

/// What the fake generator makes for `seed` at 8×8.
pub(crate) fn painted(seed: u64) -> Rgb8Image {
    Rgb8Image { width: 8, height: 8, pixels: vec![(seed % 251) as u8; 8 * 8 * 3] }
}

/// This node's model, as the bytes a request names.
pub(crate) fn our_model() -> B256 {
    B256::from(MODEL.0)
}
