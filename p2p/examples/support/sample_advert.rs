//! The advert the benchmark and the simulation publish: one model, signed with a stand-in
//! signature their verifiers accept.

use std::time::{SystemTime, UNIX_EPOCH};

use genmint_p2p::PeerId;
use genmint_p2p::advert::{Advert, AdvertisedModel};

/// An advert of `peer` for `operator`, offering the model `model_hash` called `model_name`.
pub fn sample_advert(
    peer: &PeerId,
    operator: String,
    (model_hash, model_name): (String, String),
    signature: String,
    sequence: u64,
) -> Advert {
    Advert {
        peer_id: peer.to_string(),
        operator,
        chain_id: 31337,
        contract: format!("0x{}", "34".repeat(20)),
        binding_signature: signature,
        models: vec![AdvertisedModel {
            hash: model_hash,
            name: model_name,
            kind: "pixel-unet".into(),
            max_width: 512,
            max_height: 512,
            max_steps: 50,
            defaults: None,
        }],
        devices: vec!["cpu".into()],
        queue_depth: 0,
        capacity: 4,
        price_wei: "1000".into(),
        sequence,
        issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
        refresh_secs: None,
        addresses: Vec::new(),
    }
}
