//! Hostile input: every decoder of bytes from outside the node (HTTP bodies, metadata JSON, PNG
//! and C2PA reading, CIDs, ids, cursors, config files) answers arbitrary input, and valid input
//! with bytes flipped, cut or inserted, with an error or a value, never a panic; what reaches a
//! display field carries no control or bidirectional-text character. The budget is proptest's:
//! 256 cases per property, `PROPTEST_CASES=N` for a longer run.

use std::str::FromStr;

use alloy::primitives::Address;
use genmint_model_runtime::Rgb8Image;
use genmint_node::config::Config;
use genmint_node::gallery::GalleryCursor;
use genmint_node::ipfs::Cid;
use genmint_node::provenance::eip712::{SignedCancel, SignedRequest, domain};
use genmint_node::provenance::ids::JobId;
use genmint_node::provenance::metadata::{
    Envelope, MetadataInput, PROVENANCE_VERSION, Provenance, TokenMetadata, WatermarkRecord, for_display,
};
use genmint_node::provenance::{credentials, png};
use genmint_node::verify::parse_token_id;
use genmint_p2p::hostile_input::{hostile, mutated};
use proptest::prelude::*;

/// Arbitrary text, or `valid` mutated (kept only where it is still UTF-8).
fn hostile_text(valid: &str) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        mutated(valid.as_bytes().to_vec()).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
    ]
}

const SIGNED_REQUEST: &str = r#"{"request":{"creator":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","modelHash":"0x3eaefc47879297167e9b95ccad031b54a049308597732a1b555c66631d24a729","prompt":"a lighthouse at dusk","negativePrompt":"","seed":"42","width":"32","height":"32","steps":"8","guidance":"750","scheduler":"ddim","fee":"0","nonce":"1","deadline":"1767225600"},"signature":"0x000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000000000000000000000000000000000021b"}"#;

/// Token metadata as the node writes it.
fn metadata_json() -> Vec<u8> {
    let metadata = TokenMetadata::new(MetadataInput {
        prompt: "a lighthouse at dusk",
        seed: 42,
        external_url: Some("http://127.0.0.1:8080/tokens/0x01".into()),
        provenance: Provenance {
            version: PROVENANCE_VERSION,
            chain_id: 31337,
            contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
            request: serde_json::from_str::<serde_json::Value>(SIGNED_REQUEST).unwrap()["request"].clone(),
            creator_signature: "0x01".into(),
            request_digest: "0x1234567890".into(),
            model_hash: "0x3eaefc47879297167e9b95ccad031b54a049308597732a1b555c66631d24a729".into(),
            model_name: "genmint-test".into(),
            pixel_digest: "0xab".into(),
            image_cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
            width: 32,
            height: 32,
            node: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            envelope: Envelope {
                engine: "candle 0.11.1".into(),
                noise: "chacha20-normal-v1".into(),
                scheduler: "ddim".into(),
                steps: 8,
                guidance: 7.5,
                dtype: "f32".into(),
                device_class: "cpu".into(),
            },
            watermark: Some(WatermarkRecord {
                algorithm: "genmint-qim-dct-v1".into(),
                embedded: true,
                tag: Some("0123456789".into()),
                marked_pixel_digest: "0xcd".into(),
                reason: None,
            }),
            latent_trace: None,
        },
    });
    serde_json::to_vec(&metadata).unwrap()
}

const CONFIG: &str = "[http]\nlisten = \"127.0.0.1:8080\"\n[chain]\nrpc_url = \"http://127.0.0.1:8545\"\n[model]\ndir = \"models/default\"\ndevice = \"cpu\"\n[limits]\nmax_queued_jobs = 64\n";

fn png_bytes() -> Vec<u8> {
    let image = Rgb8Image { width: 4, height: 3, pixels: (0..36).collect() };
    png::encode(&image).unwrap()
}

proptest! {
    #[test]
    fn signed_requests_and_cancels_from_http_bodies(body in hostile(vec![SIGNED_REQUEST.as_bytes().to_vec()])) {
        let domain = domain(31337, Address::repeat_byte(0xc0));
        if let Ok(signed) = serde_json::from_slice::<SignedRequest>(&body) {
            let _ = signed.verify(&domain);
        }
        if let Ok(cancel) = serde_json::from_slice::<SignedCancel>(&body) {
            let _ = cancel.verify(Default::default(), Address::ZERO, &domain);
        }
    }

    #[test]
    fn token_metadata_json(body in hostile(vec![metadata_json()])) {
        let _ = serde_json::from_slice::<TokenMetadata>(&body);
    }

    #[test]
    fn png_and_content_credentials_reading(bytes in hostile(vec![png_bytes()])) {
        if let Ok(image) = png::decode(&bytes) {
            prop_assert_eq!(image.pixels.len(), 3 * (image.width * image.height) as usize);
        }
        let _ = credentials::read(&bytes);
    }

    #[test]
    fn cids_ids_token_ids_and_cursors(text in hostile_text("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")) {
        let _ = Cid::from_str(&text);
        let _ = JobId::from_str(&text);
        let _ = parse_token_id(&text);
        let _ = GalleryCursor::from_str(&text);
    }

    #[test]
    fn config_files(text in hostile_text(CONFIG)) {
        let _ = toml::from_str::<Config>(&text);
    }

    #[test]
    fn display_fields_carry_no_control_or_bidi_character(text in any::<String>()) {
        let shown = for_display(&text);
        let forbidden = |c: char| {
            c.is_control() || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        };
        prop_assert!(!shown.chars().any(forbidden), "{:?} shows as {:?}", text, shown);
    }
}

#[test]
fn the_mutation_seeds_are_valid_input() {
    serde_json::from_str::<SignedRequest>(SIGNED_REQUEST).unwrap();
    serde_json::from_slice::<TokenMetadata>(&metadata_json()).unwrap();
    toml::from_str::<Config>(CONFIG).unwrap();
    png::decode(&png_bytes()).unwrap();
    Cid::from_str("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku").unwrap();
}
