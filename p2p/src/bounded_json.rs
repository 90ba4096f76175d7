//! JSON with a size bound, the one encoding of everything nodes send each other (job messages,
//! adverts, spot checks): encoding refuses a value that would come out larger than the bound, and
//! decoding refuses larger bytes before parsing a byte of them.
//!
//! Each format keeps its own error type, which names the format and its limit: the caller says
//! how a size refusal reads (`too_large`), and a parse failure becomes the error's
//! `From<serde_json::Error>` variant. Versions and shapes are the format's to check afterwards
//! (the job protocol's envelope version, an advert's or a spot check's fields).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value` as JSON, refusing it with `too_large(size)` when it exceeds `max_bytes`.
pub(crate) fn encode<T, E>(value: &T, max_bytes: usize, too_large: fn(usize) -> E) -> Result<Vec<u8>, E>
where
    T: Serialize + ?Sized,
    E: From<serde_json::Error>,
{
    let bytes = serde_json::to_vec(value)?;
    if bytes.len() > max_bytes {
        return Err(too_large(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes JSON bytes from a peer; bytes over `max_bytes` are refused with `too_large(size)`
/// before parsing.
pub(crate) fn decode<T, E>(bytes: &[u8], max_bytes: usize, too_large: fn(usize) -> E) -> Result<T, E>
where
    T: DeserializeOwned,
    E: From<serde_json::Error>,
{
    if bytes.len() > max_bytes {
        return Err(too_large(bytes.len()));
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// A message gossiped on a topic (an advert, a spot check): JSON under [`Self::MAX_BYTES`], whose
/// fields are checked once it parses. Implementors say their bound, errors and shape; encoding and
/// decoding are the same for all.
pub trait Gossiped: Serialize + DeserializeOwned {
    /// The largest encoding sent or accepted.
    const MAX_BYTES: usize;
    type Error: From<serde_json::Error>;

    /// The refusal of an encoding of `size` bytes.
    fn too_large(size: usize) -> Self::Error;

    /// The refusal of a message whose fields do not hold together.
    fn invalid(reason: String) -> Self::Error;

    /// Checks the fields of a parsed message.
    fn check_shape(&self) -> Result<(), String>;

    /// Encodes the message for gossip, refusing one over [`Self::MAX_BYTES`].
    fn encode(&self) -> Result<Vec<u8>, Self::Error> {
        encode(self, Self::MAX_BYTES, Self::too_large)
    }

    /// Decodes a message from a peer: size first, then JSON, then shape.
    fn decode(bytes: &[u8]) -> Result<Self, Self::Error> {
        let message: Self = decode(bytes, Self::MAX_BYTES, Self::too_large)?;
        message.check_shape().map_err(Self::invalid)?;
        Ok(message)
    }
}

/// Implements [`Gossiped`] for `$message`, whose error type `$error` refuses with
/// `TooLarge { size }` and `Shape(reason)` and whose fields are checked by `validate_shape`.
#[macro_export]
#[doc(hidden)]
macro_rules! gossiped {
    ($message:ty, $max_bytes:expr, $error:ident) => {
        impl $crate::Gossiped for $message {
            const MAX_BYTES: usize = $max_bytes;
            type Error = $error;

            fn too_large(size: usize) -> $error {
                $error::TooLarge { size }
            }

            fn invalid(reason: String) -> $error {
                $error::Shape(reason)
            }

            fn check_shape(&self) -> Result<(), String> {
                self.validate_shape()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Note {
        text: String,
    }

    #[derive(Debug)]
    enum Refused {
        TooLarge(usize),
        Malformed,
    }

    impl From<serde_json::Error> for Refused {
        fn from(_: serde_json::Error) -> Self {
            Refused::Malformed
        }
    }

    const LIMIT: usize = 64;

    fn note(text: &str) -> Note {
        Note { text: text.into() }
    }

    fn encode_note(note: &Note, limit: usize) -> Result<Vec<u8>, Refused> {
        encode(note, limit, Refused::TooLarge)
    }

    fn decode_note(bytes: &[u8], limit: usize) -> Result<Note, Refused> {
        decode(bytes, limit, Refused::TooLarge)
    }

    #[test]
    fn a_value_within_the_bound_round_trips() {
        let bytes = encode_note(&note("hello"), LIMIT).unwrap();
        assert_eq!(decode_note(&bytes, LIMIT).unwrap(), note("hello"));
        // The bound is inclusive: a value of exactly the limit goes out and comes back.
        let exact = encode_note(&note("hello"), bytes.len()).unwrap();
        assert_eq!(decode_note(&exact, bytes.len()).unwrap(), note("hello"));
    }

    #[test]
    fn a_value_over_the_bound_is_not_encoded() {
        let long = note(&"x".repeat(LIMIT));
        let size = serde_json::to_vec(&long).unwrap().len();
        assert!(matches!(encode_note(&long, LIMIT), Err(Refused::TooLarge(s)) if s == size));
    }

    #[test]
    fn oversized_bytes_are_refused_before_parsing() {
        // Garbage past the bound is "too large", never "malformed": it is not parsed at all.
        let garbage = vec![b'{'; LIMIT + 1];
        assert!(matches!(decode_note(&garbage, LIMIT), Err(Refused::TooLarge(size)) if size == LIMIT + 1));
        assert!(matches!(decode_note(&garbage[..LIMIT], LIMIT), Err(Refused::Malformed)));
    }
}
