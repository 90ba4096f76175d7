//! Keeping a token's content on other nodes: the minting node asks a peer to pin the token's image
//! and metadata ([`PinRequest`], a job-protocol message), and the peer answers with a
//! [`PinReceipt`] its operator signed, naming what it holds and where its Kubo can be reached.
//!
//! The network carries both as they are; the node checks the request against the chain before it
//! pins anything, and signs and verifies receipts with its operator keys ([`PinReceipt::signed_text`]
//! is what is signed).

use serde::{Deserialize, Serialize};

use crate::advert::check_hex;

/// The format of [`PinReceipt::signed_text`]; bump it with any change to that text.
pub const PIN_RECEIPT_VERSION: u32 = 1;
/// The most Kubo addresses a request or receipt carries.
pub const MAX_KUBO_ADDRESSES: usize = 16;
/// The longest multiaddr accepted in either.
const MAX_ADDRESS_LEN: usize = 256;
/// The longest CID accepted (a CIDv1 in base32 is about 60 characters).
const MAX_CID_LEN: usize = 128;

/// Minting node -> peer: pin the content of this token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRequest {
    /// 0x followed by 64 hex digits.
    pub token_id: String,
    pub image_cid: String,
    pub metadata_cid: String,
    /// Kubo swarm addresses (each ending in `/p2p/<Kubo peer id>`) that hold the content now: the
    /// minting node's own Kubo, and those of peers that already pinned it.
    pub providers: Vec<String>,
    /// The receipts of the token's other holders so far, so every holder can say where else the
    /// content is kept.
    #[serde(default)]
    pub receipts: Vec<PinReceipt>,
}

impl PinRequest {
    /// Checks the request's form: hex token id, CID and address lengths, how many addresses.
    pub fn validate_shape(&self) -> Result<(), String> {
        check_hex("token_id", &self.token_id, 32)?;
        check_cid("image_cid", &self.image_cid)?;
        check_cid("metadata_cid", &self.metadata_cid)?;
        check_addresses("providers", &self.providers)?;
        if self.receipts.len() > MAX_KUBO_ADDRESSES {
            return Err(format!("{} receipts, more than {MAX_KUBO_ADDRESSES}", self.receipts.len()));
        }
        self.receipts.iter().try_for_each(PinReceipt::validate_shape)
    }
}

/// Peer -> minting node: "my Kubo holds this token's image and metadata, pinned".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinReceipt {
    pub version: u32,
    pub token_id: String,
    pub image_cid: String,
    pub metadata_cid: String,
    /// The holding node's operator address (0x, 40 hex digits): who vouches for the copy.
    pub holder: String,
    /// The holding node's genmint peer id.
    pub holder_peer_id: String,
    /// Its Kubo's peer id and swarm addresses, where the content can be fetched.
    pub kubo_peer_id: String,
    pub kubo_addresses: Vec<String>,
    /// The bytes of image and metadata together.
    pub bytes: u64,
    /// Unix seconds when the content was pinned.
    pub pinned_at: u64,
    /// The holder operator's EIP-191 signature over [`Self::signed_text`].
    pub signature: String,
}

impl PinReceipt {
    /// The text the holder signs, for the deployment `(chain_id, contract)`.
    pub fn signed_text(&self, chain_id: u64, contract: &str) -> String {
        let lower = str::to_lowercase;
        format!(
            "genmint pin receipt v{}\nchain: {chain_id}\ncontract: {}\ntoken: {}\nimage: {}\nmetadata: {}\n\
             holder: {}\nholder peer: {}\nkubo peer: {}\nkubo addresses: {}\nbytes: {}\npinned at: {}",
            self.version,
            lower(contract),
            lower(&self.token_id),
            self.image_cid,
            self.metadata_cid,
            lower(&self.holder),
            self.holder_peer_id,
            self.kubo_peer_id,
            self.kubo_addresses.join(" "),
            self.bytes,
            self.pinned_at,
        )
    }

    /// Checks everything about the receipt's form that needs no key.
    pub fn validate_shape(&self) -> Result<(), String> {
        if self.version != PIN_RECEIPT_VERSION {
            return Err(format!(
                "pin receipt version {} is not spoken here (this node speaks {PIN_RECEIPT_VERSION})",
                self.version
            ));
        }
        check_hex("token_id", &self.token_id, 32)?;
        check_cid("image_cid", &self.image_cid)?;
        check_cid("metadata_cid", &self.metadata_cid)?;
        check_hex("holder", &self.holder, 20)?;
        check_hex("signature", &self.signature, 65)?;
        for (field, value) in [("holder_peer_id", &self.holder_peer_id), ("kubo_peer_id", &self.kubo_peer_id)]
        {
            if value.is_empty()
                || value.len() > MAX_CID_LEN
                || !value.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(format!("{field} {value:?} is not a peer id"));
            }
        }
        check_addresses("kubo_addresses", &self.kubo_addresses)
    }
}

fn check_cid(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_CID_LEN || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("{field} {value:?} is not a CID"));
    }
    Ok(())
}

fn check_addresses(field: &str, addresses: &[String]) -> Result<(), String> {
    if addresses.len() > MAX_KUBO_ADDRESSES {
        return Err(format!("{field} lists {} addresses, more than {MAX_KUBO_ADDRESSES}", addresses.len()));
    }
    for address in addresses {
        if !address.starts_with('/')
            || address.len() > MAX_ADDRESS_LEN
            || address.chars().any(char::is_whitespace)
        {
            return Err(format!("{field}: {address:?} is not a multiaddr"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn receipt() -> PinReceipt {
        PinReceipt {
            version: PIN_RECEIPT_VERSION,
            token_id: format!("0x{}", "ab".repeat(32)),
            image_cid: "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a".into(),
            metadata_cid: "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a".into(),
            holder: format!("0x{}", "11".repeat(20)),
            holder_peer_id: "12D3KooWholder".into(),
            kubo_peer_id: "12D3KooWkubo".into(),
            kubo_addresses: vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWkubo".into()],
            bytes: 1234,
            pinned_at: 1_700_000_000,
            signature: format!("0x{}", "22".repeat(65)),
        }
    }

    #[test]
    fn the_signed_text_names_every_field_and_the_deployment() {
        let text = receipt().signed_text(31337, "0xABCD");
        assert!(text.starts_with("genmint pin receipt v1\nchain: 31337\ncontract: 0xabcd\n"), "{text}");
        for part in
            ["token: 0xabab", "image: bafkrei", "holder: 0x1111", "kubo peer: 12D3KooWkubo", "bytes: 1234"]
        {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }

    #[test]
    fn shapes_are_checked_before_any_key_is_used() {
        assert_eq!(receipt().validate_shape(), Ok(()));
        let bad = [
            PinReceipt { version: 2, ..receipt() },
            PinReceipt { token_id: "0x12".into(), ..receipt() },
            PinReceipt { image_cid: "../etc".into(), ..receipt() },
            PinReceipt { kubo_peer_id: String::new(), ..receipt() },
            PinReceipt { kubo_addresses: vec!["not an address".into()], ..receipt() },
            PinReceipt { kubo_addresses: vec!["/ip4/1.2.3.4".into(); MAX_KUBO_ADDRESSES + 1], ..receipt() },
        ];
        for receipt in bad {
            assert!(receipt.validate_shape().is_err(), "{receipt:?}");
        }
        let request = PinRequest {
            token_id: receipt().token_id,
            image_cid: receipt().image_cid,
            metadata_cid: receipt().metadata_cid,
            providers: receipt().kubo_addresses,
            receipts: vec![receipt()],
        };
        assert_eq!(request.validate_shape(), Ok(()));
        assert!(PinRequest { metadata_cid: "x y".into(), ..request }.validate_shape().is_err());
    }
}
