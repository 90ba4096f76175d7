//! Node adverts: what a node offers (models, devices, load, price) and which operator runs it.
//!
//! An advert travels as a gossipsub message signed by the publishing node's peer key; the
//! `binding_signature` inside ties that peer id to an operator address on one deployment (chain and
//! contract). Checking that binding needs secp256k1, so it sits behind [`AdvertVerifier`], which the
//! node implements; this module checks everything else (size, shape) and defines the bound text.

use std::str::FromStr;
use std::time::SystemTime;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// The largest encoded advert a node accepts or publishes.
pub const MAX_ADVERT_BYTES: usize = 16 * 1024;
/// The most models one advert may list.
pub const MAX_ADVERTISED_MODELS: usize = 64;
/// The most device names one advert may list.
pub const MAX_ADVERTISED_DEVICES: usize = 16;
/// The longest model name, model kind or device name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest refresh interval an advert may announce (receivers keep it three times as long).
pub const MAX_REFRESH_SECS: u64 = 20 * 60;
/// The most addresses one advert may carry.
pub const MAX_ADVERTISED_ADDRESSES: usize = 8;
/// The longest advertised address, in bytes of its text form.
pub const MAX_ADDRESS_BYTES: usize = 256;

/// What a node offers to the network, signed into gossip by its peer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    /// The publishing node's libp2p peer id (base58); must equal the gossip message's source.
    pub peer_id: String,
    /// 0x-prefixed 20-byte address of the operator key.
    pub operator: String,
    pub chain_id: u64,
    /// 0x-prefixed NFT contract address.
    pub contract: String,
    /// 0x-prefixed 65-byte EIP-191 signature of [`binding_message`] by `operator`.
    pub binding_signature: String,
    pub models: Vec<AdvertisedModel>,
    /// e.g. `["cpu"]`, `["cuda:0"]`.
    pub devices: Vec<String>,
    /// Jobs waiting or running now.
    pub queue_depth: u32,
    /// How many more jobs the node will accept now.
    pub capacity: u32,
    /// The smallest fee (decimal wei) the node accepts per image.
    pub price_wei: String,
    /// Increases with every change (and across restarts: start it at the clock); receivers keep the
    /// highest per peer. Repeats of the same sequence only keep the advert fresh.
    pub sequence: u64,
    /// Unix seconds; the network sets it to the time of each (re)publication.
    pub issued_at: u64,
    /// Seconds within which the publisher repeats this advert (the network sets it at each
    /// publication; it grows with the network, see `NetworkConfig::network_advert_rate`).
    /// Receivers keep the advert three times this long. Absent from older nodes' adverts: then the
    /// receiver's own TTL applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_secs: Option<u64>,
    /// Where peers can dial the node beyond what they see of its connections: its confirmed
    /// external addresses, a relay's `/p2p-circuit` address among them when it is behind NAT.
    /// The network sets it at each publication; like `issued_at` it is no change of content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// One model a node can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertisedModel {
    /// The model hash: 0x followed by 64 hex digits.
    pub hash: String,
    pub name: String,
    pub kind: String,
    pub max_width: u32,
    pub max_height: u32,
    pub max_steps: u32,
    /// The settings a request without preferences should use.
    #[serde(default)]
    pub defaults: Option<ModelDefaults>,
}

/// A model's default request settings (guidance in hundredths, as requests sign it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDefaults {
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    pub guidance_x100: u32,
    /// The scheduler's name (`ddim`, `dpmpp_2m`, …); absent in adverts of older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
}

/// An advert of another peer as this node received it.
#[derive(Debug, Clone)]
pub struct ReceivedAdvert {
    pub advert: Advert,
    /// When the latest copy (a change or a repeat) arrived.
    pub received_at: SystemTime,
}

/// Checks an advert's `binding_signature` (the node implements it with secp256k1 recovery; this
/// crate stays libp2p-only). `Err(reason)` => the advert is rejected (not stored, not propagated).
pub trait AdvertVerifier: Send + Sync + 'static {
    fn verify(&self, advert: &Advert) -> Result<(), String>;
}

/// Why advert bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum AdvertError {
    #[error("advert of {size} bytes exceeds the {MAX_ADVERT_BYTES}-byte limit; advertise fewer models")]
    TooLarge { size: usize },
    #[error("malformed advert: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("invalid advert: {0}")]
    Shape(String),
}

crate::gossiped!(Advert, MAX_ADVERT_BYTES, AdvertError);

/// The EIP-191 message text the operator signs, binding a peer id to an operator on one deployment.
pub fn binding_message(peer_id: &str, chain_id: u64, contract: &str) -> String {
    format!(
        "genmint node binding v1\npeer: {peer_id}\nchain: {chain_id}\ncontract: {}",
        contract.to_lowercase()
    )
}

impl Advert {
    /// Checks everything about the advert's form that needs no key: the peer id parses, addresses
    /// and signature are hex of the right length, lists and names are within their bounds.
    pub fn validate_shape(&self) -> Result<(), String> {
        PeerId::from_str(&self.peer_id).map_err(|e| format!("peer_id {:?}: {e}", self.peer_id))?;
        check_hex("operator", &self.operator, 20)?;
        check_hex("contract", &self.contract, 20)?;
        check_hex("binding_signature", &self.binding_signature, 65)?;
        if self.models.len() > MAX_ADVERTISED_MODELS {
            return Err(format!(
                "{} models listed, at most {MAX_ADVERTISED_MODELS} allowed",
                self.models.len()
            ));
        }
        for (index, model) in self.models.iter().enumerate() {
            check_hex("model hash", &model.hash, 32)?;
            check_name("model name", &model.name)?;
            check_name("model kind", &model.kind)?;
            if let Some(scheduler) = model.defaults.as_ref().and_then(|d| d.scheduler.as_deref()) {
                check_name("model default scheduler", scheduler)?;
            }
            if self.models[..index].iter().any(|earlier| earlier.hash.eq_ignore_ascii_case(&model.hash)) {
                return Err(format!("model {} is listed twice", model.hash));
            }
        }
        if self.devices.len() > MAX_ADVERTISED_DEVICES {
            return Err(format!(
                "{} devices listed, at most {MAX_ADVERTISED_DEVICES} allowed",
                self.devices.len()
            ));
        }
        for device in &self.devices {
            check_name("device", device)?;
        }
        if self.addresses.len() > MAX_ADVERTISED_ADDRESSES {
            return Err(format!(
                "{} addresses listed, at most {MAX_ADVERTISED_ADDRESSES} allowed",
                self.addresses.len()
            ));
        }
        for address in &self.addresses {
            if address.len() > MAX_ADDRESS_BYTES || address.parse::<libp2p::Multiaddr>().is_err() {
                return Err(format!(
                    "address {address:?} is not a multiaddr of at most {MAX_ADDRESS_BYTES} bytes"
                ));
            }
        }
        // A uint256 has at most 78 decimal digits.
        if self.price_wei.is_empty()
            || self.price_wei.len() > 78
            || !self.price_wei.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!("price_wei {:?} is not a decimal amount of wei", self.price_wei));
        }
        if self.sequence == 0 {
            return Err("sequence must start at 1 (receivers keep the highest)".into());
        }
        if let Some(refresh) = self.refresh_secs
            && !(1..=MAX_REFRESH_SECS).contains(&refresh)
        {
            return Err(format!("refresh_secs {refresh} must be 1 to {MAX_REFRESH_SECS}"));
        }
        Ok(())
    }

    /// Whether `other` says the same as this advert apart from when it was issued, how soon it will
    /// be repeated and where the node is reached.
    pub fn same_content(&self, other: &Advert) -> bool {
        let volatile = Advert {
            issued_at: other.issued_at,
            refresh_secs: other.refresh_secs,
            addresses: other.addresses.clone(),
            ..self.clone()
        };
        volatile == *other
    }
}

pub(crate) fn check_hex(field: &str, value: &str, bytes: usize) -> Result<(), String> {
    let digits = value.strip_prefix("0x").ok_or_else(|| format!("{field} {value:?} must start with 0x"))?;
    if digits.len() != bytes * 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{field} {value:?} must be 0x followed by {} hex digits", bytes * 2));
    }
    Ok(())
}

pub(crate) fn check_name(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(format!("{field} {value:?} must be 1 to {MAX_NAME_BYTES} bytes of printable text"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::UNIX_EPOCH;

    use libp2p::identity::Keypair;

    use super::*;
    use crate::Gossiped;

    pub(crate) fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    /// A minimal advert of `peer`, number `sequence`, issued now.
    pub(crate) fn advert(peer: &PeerId, sequence: u64) -> Advert {
        Advert {
            peer_id: peer.to_string(),
            operator: format!("0x{}", "ab".repeat(20)),
            chain_id: 1,
            contract: format!("0x{}", "cd".repeat(20)),
            binding_signature: format!("0x{}", "ef".repeat(65)),
            models: Vec::new(),
            devices: vec!["cpu".into()],
            queue_depth: 0,
            capacity: 1,
            price_wei: "0".into(),
            sequence,
            issued_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            refresh_secs: None,
            addresses: Vec::new(),
        }
    }

    /// [`advert`], serving one model.
    pub(crate) fn serving_advert(peer: &PeerId, sequence: u64) -> Advert {
        let model = AdvertisedModel {
            hash: format!("0x{}", "5F".repeat(32)),
            name: "m".into(),
            kind: "k".into(),
            max_width: 64,
            max_height: 64,
            max_steps: 10,
            defaults: None,
        };
        Advert { models: vec![model], ..advert(peer, sequence) }
    }

    /// A valid advert of a new peer.
    pub(crate) fn offer() -> Advert {
        serving_advert(&peer(), 1)
    }

    #[test]
    fn binding_message_names_peer_chain_and_lowercased_contract() {
        assert_eq!(
            binding_message("12D3KooWPeer", 31337, "0xABCdef0000000000000000000000000000000001"),
            "genmint node binding v1\npeer: 12D3KooWPeer\nchain: 31337\n\
             contract: 0xabcdef0000000000000000000000000000000001"
        );
    }

    #[test]
    fn a_well_formed_advert_round_trips() {
        let advert = offer();
        assert_eq!(advert.validate_shape(), Ok(()));
        assert_eq!(Advert::decode(&advert.encode().unwrap()).unwrap(), advert);
    }

    #[test]
    fn shape_errors_name_the_field() {
        type Spoil = fn(&mut Advert);
        let cases: [(&str, Spoil); 12] = [
            ("peer_id", |a| a.peer_id = "not-a-peer".into()),
            ("operator", |a| a.operator = "0x1234".into()),
            ("contract", |a| a.contract = "cd".repeat(20)),
            ("binding_signature", |a| a.binding_signature = format!("0x{}", "zz".repeat(65))),
            ("model hash", |a| a.models[0].hash = "abc".into()),
            ("listed twice", |a| a.models.push(a.models[0].clone())),
            ("models listed", |a| a.models = vec![a.models[0].clone(); MAX_ADVERTISED_MODELS + 1]),
            ("device", |a| a.devices = vec!["x".repeat(MAX_NAME_BYTES + 1)]),
            ("price_wei", |a| a.price_wei = "-1".into()),
            ("sequence", |a| a.sequence = 0),
            ("address", |a| a.addresses = vec!["not a multiaddr".into()]),
            ("addresses listed", |a| {
                a.addresses = vec!["/ip4/127.0.0.1/tcp/1".into(); MAX_ADVERTISED_ADDRESSES + 1]
            }),
        ];
        for (field, spoil) in cases {
            let mut advert = offer();
            spoil(&mut advert);
            let error = advert.validate_shape().expect_err(field);
            assert!(error.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn oversized_garbage_and_misshapen_bytes_are_refused() {
        assert!(matches!(
            Advert::decode(&vec![b' '; MAX_ADVERT_BYTES + 1]),
            Err(AdvertError::TooLarge { .. })
        ));
        assert!(matches!(Advert::decode(b"{\"peer_id\":"), Err(AdvertError::Malformed(_))));
        let mut bad = offer();
        bad.operator = "nobody".into();
        let bytes = serde_json::to_vec(&bad).unwrap();
        assert!(matches!(Advert::decode(&bytes), Err(AdvertError::Shape(_))));

        let mut big = offer();
        big.devices = vec!["d".repeat(MAX_NAME_BYTES); MAX_ADVERTISED_DEVICES];
        big.models = (0..MAX_ADVERTISED_MODELS)
            .map(|i| AdvertisedModel {
                hash: format!("0x{i:064x}"),
                name: "n".repeat(MAX_NAME_BYTES),
                ..offer().models[0].clone()
            })
            .collect();
        assert!(matches!(big.encode(), Err(AdvertError::TooLarge { .. })));
    }

    #[test]
    fn same_content_ignores_only_the_issue_time_and_addresses() {
        let advert = offer();
        let later = Advert { issued_at: advert.issued_at + 10, ..advert.clone() };
        assert!(advert.same_content(&later));
        let relayed = Advert { addresses: vec!["/ip4/127.0.0.1/tcp/1/p2p-circuit".into()], ..advert.clone() };
        assert!(advert.same_content(&relayed));
        let busier = Advert { queue_depth: 3, ..advert.clone() };
        assert!(!advert.same_content(&busier));
    }
}
