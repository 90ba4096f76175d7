//! Every check against a token minted here the way the pipeline and the contract mint one (real
//! keys, a real C2PA manifest, real CIDs), on the in-memory chain and store of [`super::fake`].
//! Each tampering must fail exactly the checks that depend on what it changed.

use alloy::primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use genmint_model_runtime::Rgb8Image;

use super::copy::{FingerprintIndex, FingerprintMatch, NoFingerprintIndex};
use super::fake::{FakeChain, FakeToken};
use super::subject::{Claim, Subject, resolve};
use super::{CHECKS, CheckName, Report, inspect, verify_token};
use crate::chain::{MintedEvent, ModelInfo, Provenance as Record, abi_encode_request};
use crate::ipfs::MemoryStore;
use crate::provenance::credentials::Credentials;
use crate::provenance::eip712::{
    self, Attestation, GenerationRequest, attestation_digest, request_digest, sign_attestation, sign_digest,
    sign_request,
};
use crate::provenance::metadata::{
    Envelope, MetadataInput, PROVENANCE_VERSION, Provenance, TokenMetadata, WatermarkRecord,
};
use crate::provenance::png;
use crate::provenance::watermark::{self, WatermarkTag};

const CHAIN_ID: u64 = 31337;
const MINT_BLOCK: u64 = 5;
const PROMPT: &str = "a lighthouse at dusk";

/// A change to the metadata before it is pinned.
type MetadataEdit = fn(&mut TokenMetadata);

/// How the token is minted; the default is an honest node and creator.
struct Options {
    /// Signs the request in place of its creator.
    creator_key: Option<PrivateKeySigner>,
    /// Signs the attestation in place of the node.
    node_key: Option<PrivateKeySigner>,
    /// What the node attests (metadata, manifest, signature, event) in place of the pixels' digest.
    attested_digest: Option<B256>,
    /// Changes the metadata before it is pinned and attested.
    edit_metadata: MetadataEdit,
}

impl Default for Options {
    fn default() -> Self {
        Self { creator_key: None, node_key: None, attested_digest: None, edit_metadata: |_| {} }
    }
}

/// A minted token on a fake chain, its files in a memory store.
struct Fixture {
    chain: FakeChain,
    store: MemoryStore,
    token_id: U256,
    node: Address,
    model_hash: B256,
}

impl Fixture {
    async fn verify(&self) -> Report {
        verify_token(&self.chain, &self.store, self.token_id).await
    }

    fn token(&mut self) -> &mut FakeToken {
        let token_id = self.token_id;
        self.chain.token_mut(token_id).expect("the fixture's token")
    }
}

fn request(creator: Address) -> GenerationRequest {
    GenerationRequest {
        creator,
        modelHash: B256::repeat_byte(0x11),
        prompt: PROMPT.into(),
        negativePrompt: String::new(),
        seed: 7,
        width: 4,
        height: 4,
        steps: 2,
        guidance: 750,
        scheduler: "euler".into(),
        fee: U256::from(1_000),
        nonce: U256::from(1),
        deadline: 2_000_000_000,
    }
}

fn pixels() -> Rgb8Image {
    Rgb8Image { width: 4, height: 4, pixels: (0..4 * 4 * 3).map(|i| (i * 5 % 256) as u8).collect() }
}

/// The metadata the pipeline's `pin` builds for these outputs.
fn metadata(
    request: &GenerationRequest,
    creator_signature: &Bytes,
    contract: Address,
    (pixel_digest, image_cid): (B256, &str),
    node: Address,
) -> TokenMetadata {
    let provenance = Provenance {
        version: PROVENANCE_VERSION,
        chain_id: CHAIN_ID,
        contract: contract.to_checksum(None),
        request: serde_json::to_value(request).unwrap(),
        creator_signature: creator_signature.to_string(),
        request_digest: request_digest(request, &eip712::domain(CHAIN_ID, contract)).to_string(),
        model_hash: request.modelHash.to_string(),
        model_name: "tiny".into(),
        pixel_digest: pixel_digest.to_string(),
        image_cid: image_cid.to_owned(),
        width: request.width,
        height: request.height,
        node: node.to_checksum(None),
        envelope: Envelope {
            engine: "candle".into(),
            noise: "cpu-philox".into(),
            scheduler: request.scheduler.clone(),
            steps: request.steps,
            guidance: request.guidance as f32 / 100.0,
            dtype: "f32".into(),
            device_class: "cpu".into(),
        },
        watermark: None,
        latent_trace: None,
    };
    TokenMetadata::new(MetadataInput {
        prompt: &request.prompt,
        seed: request.seed,
        external_url: None,
        provenance,
    })
}

/// The mint's `AigcData` event as the contract emits it and [`MintedEvent`] decodes it: `aigcData`
/// is pixel digest ‖ image CID, `proof` the node's signature in ERC-2098 form ‖ the creator's.
fn minted_event(
    request: &GenerationRequest,
    token_id: U256,
    (pixel_digest, image_cid): (B256, &str),
    node_signature: &Bytes,
    creator_signature: &Bytes,
) -> MintedEvent {
    let compact = Signature::from_raw(node_signature).unwrap().as_erc2098();
    let proof = [compact.as_slice(), creator_signature].concat();
    MintedEvent {
        token_id,
        prompt_hash: keccak256(abi_encode_request(request)),
        pixel_digest,
        image_cid: image_cid.to_owned(),
        node_signature: Bytes::copy_from_slice(&Signature::from_erc2098(&proof[..64]).as_bytes()),
        creator_signature: Bytes::copy_from_slice(&proof[64..]),
        aigc_data: [pixel_digest.as_slice(), image_cid.as_bytes()].concat().into(),
        proof: proof.into(),
        tx_hash: B256::repeat_byte(0xee),
        block_number: MINT_BLOCK,
    }
}

/// Mints one token: request signed, image encoded with its content credentials and pinned,
/// metadata pinned, attestation signed, record and event on chain; node and model registered
/// before the mint block.
fn mint(options: Options) -> Fixture {
    let (creator, node) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let contract = Address::repeat_byte(0x42);
    let domain = eip712::domain(CHAIN_ID, contract);
    let request = request(creator.address());
    let digest = request_digest(&request, &domain);
    let token_id = eip712::token_id(digest);
    let creator_signature = match &options.creator_key {
        Some(key) => sign_digest(key, digest),
        None => sign_request(&creator, &request, &domain),
    }
    .unwrap();

    let store = MemoryStore::default();
    let pixels = pixels();
    let pixel_digest = options.attested_digest.unwrap_or(B256::from(pixels.pixel_digest()));
    let dir = tempfile::tempdir().unwrap();
    let (credentials, _) = Credentials::load_or_create(dir.path(), &node).unwrap();
    let assertion = credentials.assertion(CHAIN_ID, contract, digest, request.modelHash, pixel_digest, None);
    let image = credentials.embed(&png::encode(&pixels).unwrap(), &assertion, &Default::default()).unwrap();
    let image_cid = store.put(image).to_string();
    let outputs = (pixel_digest, image_cid.as_str());

    let mut metadata = metadata(&request, &creator_signature, contract, outputs, node.address());
    (options.edit_metadata)(&mut metadata);
    let metadata_cid = store.put(metadata.to_bytes().unwrap()).to_string();
    let attestation = Attestation {
        requestDigest: digest,
        modelHash: request.modelHash,
        pixelDigest: pixel_digest,
        imageCid: image_cid.clone(),
        metadataCid: metadata_cid.clone(),
        node: node.address(),
    };
    let node_signature = match &options.node_key {
        Some(key) => sign_digest(key, attestation_digest(&attestation, &domain)),
        None => sign_attestation(&node, &attestation, &domain),
    }
    .unwrap();

    let mut chain = FakeChain::new(CHAIN_ID, contract);
    chain.set_node(node.address(), 1, true);
    let model = ModelInfo {
        name: "tiny".into(),
        author: "genmint tests".into(),
        license_uri: "https://example.org/licence".into(),
        active: true,
    };
    chain.set_model(request.modelHash, 2, model);
    let record =
        Record { creator: creator.address(), node: node.address(), mint_block: MINT_BLOCK, metadata_cid };
    let event = minted_event(&request, token_id, outputs, &node_signature, &creator_signature);
    chain.tokens.insert(token_id, FakeToken { owner: creator.address(), record, event });
    Fixture { chain, store, token_id, node: node.address(), model_hash: request.modelHash }
}

fn failed(report: &Report) -> Vec<CheckName> {
    report.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
}

fn detail(report: &Report, name: CheckName) -> &str {
    report.checks.iter().find(|c| c.name == name).map_or("(not reported)", |c| c.detail.as_str())
}

/// The report lists every check in order and fails exactly `expected`.
fn assert_fails(report: &Report, expected: &[CheckName]) {
    let names: Vec<CheckName> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, CHECKS, "{report:#?}");
    assert_eq!(failed(report), expected, "{report:#?}");
    assert_eq!(report.ok, expected.is_empty());
}

#[tokio::test]
async fn a_genuine_token_passes_every_check() {
    let fixture = mint(Options::default());
    let (report, evidence) = inspect(&fixture.chain, &fixture.store, fixture.token_id).await;
    assert_fails(&report, &[]);
    assert_eq!(report.token_id, B256::from(fixture.token_id).to_string());
    assert_eq!(report.chain_id, CHAIN_ID);
    assert!(detail(&report, CheckName::Token).contains(&format!("minted in block {MINT_BLOCK} by node")));
    assert_eq!(detail(&report, CheckName::NodeAttestation), format!("attested by node {}", fixture.node));
    assert!(detail(&report, CheckName::ModelRegistry).contains("(tiny by genmint tests)"));
    assert_eq!(evidence.request.as_ref().map(|r| r.prompt.as_str()), Some(PROMPT));
    assert_eq!(evidence.image, Some(pixels()));
    assert_eq!(evidence.pixel_digest, Some(B256::from(pixels().pixel_digest())));
}

#[test]
fn check_names_serialize_and_print_as_before() {
    let legacy = [
        "token",
        "metadata_cid",
        "metadata",
        "request",
        "creator_signature",
        "image_cid",
        "pixel_digest",
        "watermark",
        "content_credentials",
        "node_attestation",
        "contract_verify",
        "node_registry",
        "model_registry",
        "dispute",
    ];
    assert_eq!(CHECKS.map(CheckName::as_str), legacy);
    for name in CHECKS.into_iter().chain([CheckName::Subject, CheckName::Regeneration]) {
        assert_eq!(serde_json::to_value(name).unwrap(), name.as_str());
        assert_eq!(name.to_string(), name.as_str());
    }
    assert_eq!(CheckName::Subject.as_str(), "subject");
    assert_eq!(CheckName::Regeneration.as_str(), "regeneration");
    assert_eq!(format!("[{:<19}]", CheckName::Token), "[token              ]", "the CLI pads names");
    let mut report =
        Report { token_id: "0x01".into(), chain_id: 1, contract: "0x02".into(), ok: true, checks: vec![] };
    report.push(CheckName::MetadataCid, Err("gone".into()));
    assert_eq!(
        serde_json::to_string(&report).unwrap(),
        r#"{"tokenId":"0x01","chainId":1,"contract":"0x02","ok":false,"checks":[{"name":"metadata_cid","ok":false,"detail":"gone"}]}"#
    );
}

#[tokio::test]
async fn a_pixel_digest_changed_in_the_event_fails_what_attested_it() {
    let mut fixture = mint(Options::default());
    let wrong = B256::repeat_byte(0x77);
    let event = &mut fixture.token().event;
    event.pixel_digest = wrong;
    event.aigc_data = [wrong.as_slice(), event.image_cid.as_bytes()].concat().into();
    let report = fixture.verify().await;
    assert_fails(
        &report,
        &[
            CheckName::Metadata,
            CheckName::PixelDigest,
            CheckName::ContentCredentials,
            CheckName::NodeAttestation,
        ],
    );
    assert!(
        detail(&report, CheckName::PixelDigest)
            .ends_with(&format!("but the raw output's digest the node attested is {wrong}"))
    );
    assert!(detail(&report, CheckName::Metadata).contains("provenance.pixelDigest is"), "{report:#?}");
    assert!(detail(&report, CheckName::ContentCredentials).contains("pixelDigest"), "{report:#?}");
    assert!(detail(&report, CheckName::NodeAttestation).starts_with("attestation signed by"), "{report:#?}");
}

#[tokio::test]
async fn a_node_attesting_a_digest_its_pixels_do_not_have_fails_the_pixel_digest() {
    let wrong = B256::repeat_byte(0x77);
    let report = mint(Options { attested_digest: Some(wrong), ..Options::default() }).verify().await;
    assert_fails(&report, &[CheckName::PixelDigest]);
    let digest = B256::from(pixels().pixel_digest());
    assert_eq!(
        detail(&report, CheckName::PixelDigest),
        format!("pixels hash to {digest}, but the raw output's digest the node attested is {wrong}")
    );
}

#[tokio::test]
async fn a_watermark_the_metadata_records_but_the_pixels_lack_fails_the_watermark_and_credentials() {
    let claim: MetadataEdit = |metadata| {
        let p = &mut metadata.provenance;
        let tag = WatermarkTag::for_token(
            p.chain_id,
            p.contract.parse().unwrap(),
            p.request_digest.parse().unwrap(),
        );
        p.watermark = Some(WatermarkRecord {
            algorithm: watermark::ALGORITHM.into(),
            embedded: true,
            tag: Some(tag.to_string()),
            marked_pixel_digest: p.pixel_digest.clone(),
            reason: None,
        });
    };
    let report = mint(Options { edit_metadata: claim, ..Options::default() }).verify().await;
    assert_fails(&report, &[CheckName::Watermark, CheckName::ContentCredentials]);
    assert!(detail(&report, CheckName::Watermark).contains("none is found in the image"), "{report:#?}");
    let credentials = detail(&report, CheckName::ContentCredentials);
    assert!(credentials.contains("markedPixelDigest") && credentials.contains("soft binding"), "{report:#?}");
    let unmarked = mint(Options::default()).verify().await;
    assert!(detail(&unmarked, CheckName::Watermark).contains("predates watermarks"), "{unmarked:#?}");
}

#[tokio::test]
async fn pinned_metadata_that_disagrees_fails_the_metadata_naming_the_field() {
    let edits: [(MetadataEdit, &str); 4] = [
        (
            |m| m.prompt = "a lighthouse at dawn".into(),
            "prompt is \"a lighthouse at dawn\", not \"a lighthouse at dusk\"",
        ),
        (|m| m.image = "ipfs://bafkreielsewhere".into(), "image is ipfs://bafkreielsewhere, not ipfs://"),
        (|m| m.provenance.chain_id = 1, "provenance.chainId is 1, not 31337"),
        (|m| m.provenance.width = 8, "provenance.width/height is 8x4, not 4x4"),
    ];
    for (edit, field) in edits {
        let report = mint(Options { edit_metadata: edit, ..Options::default() }).verify().await;
        assert_fails(&report, &[CheckName::Metadata]);
        let detail = detail(&report, CheckName::Metadata);
        assert!(detail.starts_with("the metadata disagrees: "), "{detail}");
        assert!(detail.contains(field), "{detail} should name {field}");
    }
}

#[tokio::test]
async fn metadata_bytes_that_do_not_hash_to_the_cid_fail_it_and_what_needs_them() {
    let mut fixture = mint(Options::default());
    let cid = fixture.token().record.metadata_cid.parse().unwrap();
    fixture.store.replace(&cid, b"{\"name\": \"not the minted metadata\"}".to_vec());
    let report = fixture.verify().await;
    assert_fails(
        &report,
        &[
            CheckName::MetadataCid,
            CheckName::Metadata,
            CheckName::Request,
            CheckName::CreatorSignature,
            CheckName::ContentCredentials,
            CheckName::NodeAttestation,
            CheckName::ContractVerify,
            CheckName::ModelRegistry,
        ],
    );
    assert!(
        detail(&report, CheckName::MetadataCid).starts_with(&format!("the bytes fetched for {cid} hash to "))
    );
    assert_eq!(detail(&report, CheckName::Metadata), "no metadata to read");
    assert_eq!(detail(&report, CheckName::ModelRegistry), "no request to read the model hash from");
}

#[tokio::test]
async fn a_request_signed_by_another_key_fails_the_creator_signature() {
    let other = PrivateKeySigner::random();
    let mut fixture = mint(Options { creator_key: Some(other.clone()), ..Options::default() });
    let creator = fixture.token().record.creator;
    let report = fixture.verify().await;
    assert_fails(&report, &[CheckName::CreatorSignature]);
    assert_eq!(
        detail(&report, CheckName::CreatorSignature),
        format!("signed by {}, not by the creator {creator}", other.address())
    );
}

#[tokio::test]
async fn an_attestation_signed_by_another_key_fails_the_node_attestation() {
    let other = PrivateKeySigner::random();
    let fixture = mint(Options { node_key: Some(other.clone()), ..Options::default() });
    let report = fixture.verify().await;
    assert_fails(&report, &[CheckName::NodeAttestation]);
    assert_eq!(
        detail(&report, CheckName::NodeAttestation),
        format!("attestation signed by {}, not by the node {}", other.address(), fixture.node)
    );
}

#[tokio::test]
async fn a_contract_that_refuses_fails_the_contract_verify() {
    let mut fixture = mint(Options::default());
    fixture.chain.verify_aigc = false;
    let report = fixture.verify().await;
    assert_fails(&report, &[CheckName::ContractVerify]);
    assert!(detail(&report, CheckName::ContractVerify).contains("verify refuses"));
}

#[tokio::test]
async fn a_node_deactivated_since_or_registered_after_the_mint_fails_the_node_registry() {
    let cases: [(&[(u64, bool)], &str); 2] = [
        (
            &[(1, true), (MINT_BLOCK + 2, false)],
            "was registered and active at the mint block 5 but has been deactivated since",
        ),
        (&[(MINT_BLOCK + 1, true)], "was not registered and active at the mint block 5"),
    ];
    for (history, outcome) in cases {
        let mut fixture = mint(Options::default());
        fixture.chain.nodes.insert(fixture.node, history.to_vec());
        let report = fixture.verify().await;
        assert_fails(&report, &[CheckName::NodeRegistry]);
        assert_eq!(detail(&report, CheckName::NodeRegistry), format!("node {} {outcome}", fixture.node));
    }
}

#[tokio::test]
async fn a_model_never_registered_fails_the_model_registry() {
    let mut fixture = mint(Options::default());
    fixture.chain.models.clear();
    let report = fixture.verify().await;
    assert_fails(&report, &[CheckName::ModelRegistry]);
    assert_eq!(
        detail(&report, CheckName::ModelRegistry),
        format!(
            "model {} ( by ) was not registered and active at the mint block {MINT_BLOCK}",
            fixture.model_hash
        )
    );
}

#[tokio::test]
async fn a_confirmed_fraud_fails_the_dispute_check_and_an_open_dispute_passes_saying_so() {
    let mut fixture = mint(Options::default());
    let challenger = Address::repeat_byte(0xc4);
    let mut state = crate::chain::DisputeState {
        status: crate::chain::DisputeStatus::Open,
        challenger,
        deadline: 1_800_000_000,
        confirmations: 1,
        rejections: 0,
    };
    fixture.chain.disputes.insert(fixture.token_id, state.clone());
    let report = fixture.verify().await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(
        detail(&report, CheckName::Dispute),
        format!(
            "a dispute by {challenger} is open until 1800000000 (unix seconds): 1 re-check(s) confirm a forgery, 0 reject it"
        )
    );
    state.status = crate::chain::DisputeStatus::FraudConfirmed;
    state.confirmations = 2;
    fixture.chain.disputes.insert(fixture.token_id, state);
    let report = fixture.verify().await;
    assert_fails(&report, &[CheckName::Dispute]);
    assert!(detail(&report, CheckName::Dispute).starts_with("fraud confirmed on chain: 2 re-check(s)"));
}

#[tokio::test]
async fn an_unknown_token_fails_every_check_with_the_reason() {
    let fixture = mint(Options::default());
    let report = verify_token(&fixture.chain, &fixture.store, fixture.token_id + U256::from(1)).await;
    assert_fails(&report, &CHECKS);
    assert_eq!(detail(&report, CheckName::Token), "no such token on this contract");
    assert!(report.checks[1..].iter().all(|c| c.detail == "the token has no chain record"), "{report:#?}");
}

#[tokio::test]
async fn a_cid_or_file_resolves_to_its_token_and_is_checked_against_it() {
    let mut fixture = mint(Options::default());
    let (image_cid, metadata_cid) =
        (fixture.token().event.image_cid.clone(), fixture.token().record.metadata_cid.clone());
    let (_, evidence) = inspect(&fixture.chain, &fixture.store, fixture.token_id).await;
    for (cid, claim) in [
        (&image_cid, Claim::Image { cid: image_cid.clone() }),
        (&metadata_cid, Claim::Metadata { cid: metadata_cid.clone() }),
    ] {
        let found =
            resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &Subject::Cid(cid.clone()), 0)
                .await
                .unwrap();
        assert_eq!(
            found,
            (fixture.token_id, claim.clone()),
            "the image by its manifest, metadata by its digest"
        );
        assert!(claim.check(&evidence).is_some_and(|result| result.is_ok()));
    }

    // An image without credentials is found by its CID in the mint events, and its claim checked.
    let stripped = fixture.store.put(png::encode(&pixels()).unwrap()).to_string();
    let subject = Subject::Cid(stripped.clone());
    let unknown =
        resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &subject, 0).await.unwrap_err();
    assert!(unknown.contains("no mint event on this contract names it"), "{unknown}");
    let claim = Claim::Image { cid: stripped.clone() };
    assert!(
        claim.check(&evidence).is_some_and(|result| result.is_err_and(|e| e.contains("not the minted file")))
    );
    fixture.token().event.image_cid = stripped;
    let found = resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &subject, 0).await.unwrap();
    assert_eq!(found, (fixture.token_id, claim));
    assert!(
        resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &subject, MINT_BLOCK + 1).await.is_err(),
        "searched from a later block"
    );
}

#[tokio::test]
async fn a_copy_is_found_by_its_watermark_and_judged_by_its_likeness() {
    let fixture = mint(Options::default());
    let token = B256::from(fixture.token_id);
    let tag = WatermarkTag::for_token(CHAIN_ID, fixture.chain.contract, token);
    let picture = Rgb8Image {
        width: 256,
        height: 256,
        pixels: (0..256 * 256 * 3).map(|i: u32| ((i / 3 % 256) ^ (i / 768)) as u8).collect(),
    };
    let marked = watermark::embed(&picture, tag).unwrap();
    let rgb = image::RgbImage::from_raw(256, 256, marked.pixels.clone()).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode_image(&rgb).unwrap();
    let cid = fixture.store.put(jpeg).to_string();

    let (token_id, claim) =
        resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &Subject::Cid(cid), 0).await.unwrap();
    assert_eq!(token_id, fixture.token_id, "the watermark's tag names the token");
    let Claim::Copy { detected, .. } = &claim else { panic!("{claim:?}") };
    assert_eq!(detected.tag(), Some(tag));
    let (_, mut evidence) = inspect(&fixture.chain, &fixture.store, fixture.token_id).await;
    let unlike = claim.check(&evidence).unwrap().unwrap_err();
    assert!(unlike.contains("does not look like its image"), "{unlike}");
    evidence.image = Some(marked);
    let like = claim.check(&evidence).unwrap().unwrap();
    assert!(like.starts_with("a copy, not the minted file"), "{like}");

    let other = WatermarkTag::for_token(CHAIN_ID + 1, fixture.chain.contract, token);
    let elsewhere = watermark::embed(&picture, other).unwrap();
    let cid = fixture.store.put(png::encode(&elsewhere).unwrap()).to_string();
    let refused = resolve(&fixture.chain, &fixture.store, &NoFingerprintIndex, &Subject::Cid(cid), 0)
        .await
        .unwrap_err();
    assert!(refused.contains("no token minted on this contract"), "{refused}");
}

/// A fingerprint index holding one token's fingerprint.
struct OneFingerprint(U256, u64);

impl FingerprintIndex for OneFingerprint {
    async fn nearest(&self, fingerprint: u64) -> Result<Vec<FingerprintMatch>, String> {
        let distance = (fingerprint ^ self.1).count_ones();
        Ok((distance <= super::regenerate::DHASH_THRESHOLD)
            .then(|| FingerprintMatch { token_id: B256::from(self.0).to_string(), distance })
            .into_iter()
            .collect())
    }
}

#[tokio::test]
async fn a_copy_without_a_watermark_is_found_by_its_fingerprint_and_says_it_is_weaker_evidence() {
    let fixture = mint(Options::default());
    // Unmarked (too small to carry a mark), as a JPEG: no credentials, no watermark.
    let picture = Rgb8Image {
        width: 64,
        height: 64,
        pixels: (0..64 * 64 * 3).map(|i: u32| (((i / 3 % 64) * 4) ^ (i / 192)) as u8).collect(),
    };
    let rgb = image::RgbImage::from_raw(64, 64, picture.pixels.clone()).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70).encode_image(&rgb).unwrap();
    let cid = fixture.store.put(jpeg).to_string();
    let index = OneFingerprint(fixture.token_id, crate::provenance::fingerprint::dhash(&picture));

    let (token_id, claim) =
        resolve(&fixture.chain, &fixture.store, &index, &Subject::Cid(cid.clone()), 0).await.unwrap();
    assert_eq!(token_id, fixture.token_id, "the index names the token");
    let Claim::Copy { detected, .. } = &claim else { panic!("{claim:?}") };
    assert_eq!(detected.tag(), None);
    let (_, mut evidence) = inspect(&fixture.chain, &fixture.store, fixture.token_id).await;
    evidence.image = Some(picture);
    let like = claim.check(&evidence).unwrap().unwrap();
    assert!(like.contains("no watermark") && like.contains("weaker evidence"), "{like}");

    let elsewhere = OneFingerprint(fixture.token_id, !index.1);
    let refused =
        resolve(&fixture.chain, &fixture.store, &elsewhere, &Subject::Cid(cid), 0).await.unwrap_err();
    assert!(refused.contains("no token's image in the fingerprint index looks like it"), "{refused}");
}
