//! The 32-byte identifiers a job carries from end to end, each parsed once where it enters (HTTP,
//! the job store, the wire) and printed where it leaves, always as `0x` + 64 lowercase hex digits:
//! [`JobId`] (the request's EIP-712 digest, which is also the token id), [`PixelDigest`] and
//! [`TxHash`].

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{B256, U256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Text that is not a 32-byte identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what} (0x + 64 hex digits)")]
pub struct IdError {
    pub what: &'static str,
    pub text: String,
}

/// Defines a newtype over 32 bytes that reads `0x`-prefixed or bare hex in any case and writes
/// `0x` + lowercase hex, in `Display`, `FromStr` and serde alike.
macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub B256);

        impl $name {
            /// What the identifier is called in messages.
            pub const WHAT: &'static str = $what;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                parse_b256(text).map(Self).ok_or_else(|| IdError { what: $what, text: text.to_owned() })
            }
        }

        impl From<B256> for $name {
            fn from(bytes: B256) -> Self {
                Self(bytes)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id32!(
    /// A job's id: the EIP-712 digest of its signed request, and so also the id of its token.
    JobId,
    "job id"
);
id32!(
    /// sha256(width u32 BE ‖ height u32 BE ‖ RGB8 pixels) of a generated image.
    PixelDigest,
    "pixel digest"
);
id32!(
    /// The hash of a transaction.
    TxHash,
    "transaction hash"
);

impl JobId {
    /// The token a mint of this job's request creates.
    pub fn token_id(self) -> U256 {
        U256::from_be_bytes(self.0.0)
    }

    /// The job of a token (the inverse of [`Self::token_id`]).
    pub fn of_token(token_id: U256) -> Self {
        Self(B256::from(token_id))
    }
}

fn parse_b256(text: &str) -> Option<B256> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    Some(B256::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_any_case_with_or_without_0x_and_write_lowercase_0x() {
        let upper = format!("0x{}", "AB".repeat(32));
        let id: JobId = upper.parse().unwrap();
        assert_eq!(id.to_string(), format!("0x{}", "ab".repeat(32)));
        assert_eq!("ab".repeat(32).parse::<JobId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"0x{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<JobId>(&format!("\"{upper}\"")).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_refused_with_their_kind() {
        for bad in ["", "0x", "0x12", &format!("0x{}", "g".repeat(64)), &format!("0x{}", "a".repeat(66))] {
            let err = bad.parse::<TxHash>().unwrap_err();
            assert_eq!(err.what, "transaction hash");
            assert!(err.to_string().contains("0x + 64 hex digits"), "{err}");
        }
    }

    #[test]
    fn a_job_id_is_its_token_id() {
        let id = JobId(B256::repeat_byte(0x11));
        assert_eq!(JobId::of_token(id.token_id()), id);
        assert_eq!(JobId::of_token(U256::from(0xab)).to_string(), format!("0x{}ab", "0".repeat(62)));
    }
}
