//! The one way the runtime's 32-byte digests (model hashes, trace roots) are written and read:
//! `0x` and 64 lowercase hex digits, read back with or without `0x` in either case.

/// Implements `Display`, `Debug`, `FromStr` and serde for a `struct $name(pub [u8; 32])`; `$field`
/// names it in parse errors.
macro_rules! hex_digest {
    ($name:ident, $field:literal) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::RuntimeError;

            /// Accepts 64 hex digits, with or without `0x`, in either case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut bytes).map_err(|_| {
                    $crate::RuntimeError::InvalidParameter {
                        field: $field,
                        value: format!("{s:?}"),
                        allowed: "0x followed by 64 hex digits".to_string(),
                    }
                })?;
                Ok(Self(bytes))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use hex_digest;
