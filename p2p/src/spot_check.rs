//! Spot checks: a node that serves a model re-generates a token another node minted with it and
//! tells the network whether its pixels came out the same as the minting node attested.
//!
//! A check travels as a gossipsub message signed by the checking node's peer key; its `signature`
//! is the checker's operator key over [`SpotCheck::signed_text`], which also names the deployment
//! (chain and contract), so a check cannot be replayed on another network or altered in flight.
//! Checking that signature needs secp256k1, so it sits behind [`SpotCheckVerifier`], which the node
//! implements; this module checks everything else (size, version, shape, a consistent outcome).

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use serde::{Deserialize, Serialize};

use crate::advert::{check_hex, check_name};

/// The spot-check format this node speaks; the gossip topic carries it too.
pub const SPOT_CHECK_VERSION: u32 = 1;
/// The largest encoded spot check a node accepts or publishes.
pub const MAX_SPOT_CHECK_BYTES: usize = 4 * 1024;

/// The most bits of a 64-bit difference hash (dHash) in which a re-generation under a different
/// reproducibility envelope may differ from the minted image and still count as the same picture.
pub const SIMILAR_MAX_DISTANCE: u32 = 10;

/// How the re-generated pixels compare with the attested ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Bit for bit the attested pixels.
    Match,
    /// Not bit-exact, generated under a different envelope (say CUDA against CPU), and within
    /// [`SIMILAR_MAX_DISTANCE`] dHash bits of the minted image: what honest hardware differences give.
    Similar,
    /// Different pixels where the same envelope must give the same ones, or a different picture.
    Mismatch,
}

impl Outcome {
    /// The outcome two digests, two envelopes and the perceptual distance (when measured) give.
    pub fn of(same_pixels: bool, same_envelope: bool, perceptual_distance: Option<u32>) -> Self {
        match (same_pixels, same_envelope, perceptual_distance) {
            (true, _, _) => Outcome::Match,
            (false, false, Some(distance)) if distance <= SIMILAR_MAX_DISTANCE => Outcome::Similar,
            (false, _, _) => Outcome::Mismatch,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Similar => "similar",
            Outcome::Mismatch => "mismatch",
        }
    }
}

/// The part of a reproducibility envelope that decides whether two nodes must agree bit for bit:
/// the same engine, dtype and device class give the same pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckEnvelope {
    pub engine: String,
    pub dtype: String,
    /// e.g. `cpu`, `cuda-sm90`.
    pub device_class: String,
}

/// One node's re-generation of one token, signed by its operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotCheck {
    /// [`SPOT_CHECK_VERSION`].
    pub version: u32,
    /// The token id as 0x followed by 64 hex digits (the request digest).
    pub token_id: String,
    /// The model the request names: 0x followed by 64 hex digits.
    pub model_hash: String,
    /// 0x-prefixed address of the operator whose node minted the token.
    pub minted_by: String,
    /// The pixel digest the mint attested (0x, 64 hex digits).
    pub expected_pixel_digest: String,
    /// The pixel digest of the checker's re-generation.
    pub regenerated_pixel_digest: String,
    /// Bits of the 64-bit dHash in which the re-generation differs from the minted image; measured
    /// when the digests differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perceptual_distance: Option<u32>,
    /// What the digests, the envelopes and the distance say ([`Outcome::of`]).
    pub outcome: Outcome,
    /// 0x-prefixed address of the checking node's operator, who signs the check.
    pub checker: String,
    /// How the checker generated.
    pub checker_envelope: CheckEnvelope,
    /// How the minting node says it generated (from the token's metadata).
    pub minted_envelope: CheckEnvelope,
    /// Unix seconds.
    pub checked_at: u64,
    /// 0x-prefixed 65-byte EIP-191 signature of [`SpotCheck::signed_text`] by `checker`.
    pub signature: String,
    /// Present when the checker replayed steps of the node's latent trace instead of
    /// re-generating: then `regenerated_pixel_digest` is the digest the trace's final entry
    /// decodes to (the attested one when the check got that far), and the outcome says whether
    /// the trace held (an additive field: checks without it read and sign as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_check: Option<StepCheck>,
}

/// The most steps a step check names.
pub const MAX_STEP_CHECK_STEPS: usize = 64;

/// What a step check replayed and what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCheck {
    /// The denoising steps replayed (step `i` from trace entry `i`), increasing.
    pub steps: Vec<u32>,
    /// What did not hold: `trace` (not the committed trace), `initial` (entry 0 is not the
    /// seed's noise), `step N` (step N replayed does not give entry N + 1), `decode` (the final
    /// entry does not decode to the attested pixels); `None` when everything held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// A peer's spot check that passed every check the network makes (size, shape, freshness, its
/// publisher bound to the checker by an advert, the signature). Gossip holds it back until the node
/// gives its verdict with [`crate::NetworkHandle::judge_spot_check`] (is the checker a registered
/// node, does the chain agree?); only an accepted check travels on.
#[derive(Debug)]
pub struct ReceivedSpotCheck {
    pub check: SpotCheck,
    /// The peer that published it (the checker's node).
    pub publisher: PeerId,
    pub ticket: SpotCheckTicket,
}

/// The node's verdict on a received spot check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sound: gossip forwards it.
    Accept,
    /// Cannot be judged now (the chain did not answer, the node is busy): not forwarded, nobody blamed.
    Ignore,
    /// Wrong (an unregistered checker, a token or digest the chain does not know): not forwarded,
    /// and it counts against the peer that sent it.
    Reject,
}

/// Names a received spot check to [`crate::NetworkHandle::judge_spot_check`].
#[derive(Debug)]
pub struct SpotCheckTicket {
    pub(crate) message_id: MessageId,
    /// The peer that handed us the message (gossip scores it by the verdict).
    pub(crate) propagation_source: PeerId,
}

/// Checks a spot check's `signature` (the node implements it with secp256k1 recovery; this crate
/// stays libp2p-only). `Err(reason)` => the check is rejected (not delivered, not propagated).
pub trait SpotCheckVerifier: Send + Sync + 'static {
    fn verify(&self, check: &SpotCheck) -> Result<(), String>;
}

/// Why spot-check bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum SpotCheckError {
    #[error("spot check of {size} bytes exceeds the {MAX_SPOT_CHECK_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("malformed spot check: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("invalid spot check: {0}")]
    Shape(String),
}

crate::gossiped!(SpotCheck, MAX_SPOT_CHECK_BYTES, SpotCheckError);

impl SpotCheck {
    /// The EIP-191 message text the checker's operator signs: every field but the signature, and
    /// the deployment (chain and contract) the check belongs to. Hex is lowercased; no field can
    /// hold a line break (see [`Self::validate_shape`]), so the text reads back unambiguously.
    pub fn signed_text(&self, chain_id: u64, contract: &str) -> String {
        let lower = str::to_lowercase;
        let (checker, minted) = (&self.checker_envelope, &self.minted_envelope);
        format!(
            "genmint spot check v{}\nchain: {chain_id}\ncontract: {}\ntoken: {}\nmodel: {}\nminted by: {}\n\
             expected pixels: {}\nregenerated pixels: {}\nperceptual distance: {}\noutcome: {}\nchecker: {}\n\
             checker engine: {}\nchecker dtype: {}\nchecker device class: {}\n\
             minted engine: {}\nminted dtype: {}\nminted device class: {}\nchecked at: {}",
            self.version,
            lower(contract),
            lower(&self.token_id),
            lower(&self.model_hash),
            lower(&self.minted_by),
            lower(&self.expected_pixel_digest),
            lower(&self.regenerated_pixel_digest),
            self.perceptual_distance.map_or("none".to_owned(), |d| d.to_string()),
            self.outcome.as_str(),
            lower(&self.checker),
            checker.engine,
            checker.dtype,
            checker.device_class,
            minted.engine,
            minted.dtype,
            minted.device_class,
            self.checked_at,
        ) + &self.step_check.as_ref().map_or(String::new(), |step| {
            let steps: Vec<String> = step.steps.iter().map(u32::to_string).collect();
            format!(
                "\nsteps replayed: {}\nsteps failed: {}",
                steps.join(","),
                step.failed.as_deref().unwrap_or("none")
            )
        })
    }

    /// Checks everything about the check's form that needs no key: the version, hex fields of the
    /// right length, envelope names within bounds, and an outcome that agrees with the two digests.
    pub fn validate_shape(&self) -> Result<(), String> {
        if self.version != SPOT_CHECK_VERSION {
            return Err(format!(
                "version {} is not spoken here (this node speaks {SPOT_CHECK_VERSION})",
                self.version
            ));
        }
        check_hex("token_id", &self.token_id, 32)?;
        check_hex("model_hash", &self.model_hash, 32)?;
        check_hex("minted_by", &self.minted_by, 20)?;
        check_hex("expected_pixel_digest", &self.expected_pixel_digest, 32)?;
        check_hex("regenerated_pixel_digest", &self.regenerated_pixel_digest, 32)?;
        check_hex("checker", &self.checker, 20)?;
        check_hex("signature", &self.signature, 65)?;
        for (which, envelope) in [("checker", &self.checker_envelope), ("minted", &self.minted_envelope)] {
            for (field, value) in [
                ("engine", &envelope.engine),
                ("dtype", &envelope.dtype),
                ("device_class", &envelope.device_class),
            ] {
                check_name(&format!("{which} envelope {field}"), value)?;
            }
        }
        if self.checker.eq_ignore_ascii_case(&self.minted_by) {
            return Err(format!("checker {} checks its own token", self.checker));
        }
        if self.perceptual_distance.is_some_and(|d| d > 64) {
            return Err(format!("perceptual distance {:?} exceeds 64 bits", self.perceptual_distance));
        }
        let same = self.expected_pixel_digest.eq_ignore_ascii_case(&self.regenerated_pixel_digest);
        let implied = match &self.step_check {
            None => Outcome::of(same, self.same_envelope(), self.perceptual_distance),
            // A failed step check is a mismatch; one that held compares its decoded pixels as a
            // re-generation's.
            Some(step) => {
                check_step_check(step)?;
                match step.failed {
                    Some(_) => Outcome::Mismatch,
                    None => Outcome::of(same, self.same_envelope(), self.perceptual_distance),
                }
            }
        };
        if self.outcome != implied {
            return Err(format!(
                "outcome {} contradicts the digests (expected {}, regenerated {}), envelopes and distance {:?}: it is {}",
                self.outcome.as_str(),
                self.expected_pixel_digest,
                self.regenerated_pixel_digest,
                self.perceptual_distance,
                implied.as_str()
            ));
        }
        Ok(())
    }

    /// Whether the check re-derived the pixels (a full re-generation), as a dispute's vote needs.
    pub fn regenerated(&self) -> bool {
        self.step_check.is_none()
    }

    /// Whether the checker generated the way the minting node did (a mismatch then means one of
    /// them is wrong; across device classes it may be the hardware).
    pub fn same_envelope(&self) -> bool {
        self.checker_envelope == self.minted_envelope
    }
}

/// A step check names at most [`MAX_STEP_CHECK_STEPS`] increasing steps and a known failure.
fn check_step_check(step: &StepCheck) -> Result<(), String> {
    if step.steps.is_empty() || step.steps.len() > MAX_STEP_CHECK_STEPS {
        return Err(format!(
            "a step check names 1 to {MAX_STEP_CHECK_STEPS} steps, not {}",
            step.steps.len()
        ));
    }
    if step.steps.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err("a step check's steps increase".to_owned());
    }
    match step.failed.as_deref() {
        None | Some("trace" | "initial" | "decode") => Ok(()),
        Some(other) => match other.strip_prefix("step ").map(str::parse::<u32>) {
            Some(Ok(n)) if step.steps.contains(&n) => Ok(()),
            _ => Err(format!("a step check cannot have failed {other:?}")),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Gossiped;

    pub(crate) fn check() -> SpotCheck {
        let envelope =
            CheckEnvelope { engine: "candle 0.11".into(), dtype: "f32".into(), device_class: "cpu".into() };
        SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: format!("0x{}", "Aa".repeat(32)),
            model_hash: format!("0x{}", "12".repeat(32)),
            minted_by: format!("0x{}", "34".repeat(20)),
            expected_pixel_digest: format!("0x{}", "56".repeat(32)),
            regenerated_pixel_digest: format!("0x{}", "56".repeat(32)),
            perceptual_distance: None,
            outcome: Outcome::Match,
            checker: format!("0x{}", "78".repeat(20)),
            checker_envelope: envelope.clone(),
            minted_envelope: envelope,
            checked_at: 1_700_000_000,
            signature: format!("0x{}", "9a".repeat(65)),
            step_check: None,
        }
    }

    #[test]
    fn the_signed_text_names_every_field_but_the_signature_and_the_deployment() {
        let check = check();
        let text = check.signed_text(31337, "0xABCdef0000000000000000000000000000000001");
        assert_eq!(
            text,
            format!(
                "genmint spot check v1\nchain: 31337\ncontract: 0xabcdef0000000000000000000000000000000001\n\
                 token: 0x{}\nmodel: 0x{}\nminted by: 0x{}\nexpected pixels: 0x{}\nregenerated pixels: 0x{}\n\
                 perceptual distance: none\noutcome: match\nchecker: 0x{}\nchecker engine: candle 0.11\nchecker dtype: f32\n\
                 checker device class: cpu\nminted engine: candle 0.11\nminted dtype: f32\n\
                 minted device class: cpu\nchecked at: 1700000000",
                "aa".repeat(32),
                "12".repeat(32),
                "34".repeat(20),
                "56".repeat(32),
                "56".repeat(32),
                "78".repeat(20)
            )
        );
        let resigned = SpotCheck { signature: format!("0x{}", "00".repeat(65)), ..check.clone() };
        assert_eq!(resigned.signed_text(31337, "0x01"), check.signed_text(31337, "0x01"));
        let later = SpotCheck { checked_at: check.checked_at + 1, ..check.clone() };
        assert_ne!(later.signed_text(31337, "0x01"), check.signed_text(31337, "0x01"));
        assert_ne!(check.signed_text(1, "0x01"), check.signed_text(31337, "0x01"));
    }

    #[test]
    fn a_well_formed_check_round_trips() {
        let check = check();
        assert_eq!(check.validate_shape(), Ok(()));
        assert_eq!(SpotCheck::decode(&check.encode().unwrap()).unwrap(), check);
        assert!(check.same_envelope());
    }

    #[test]
    fn shape_errors_name_the_field() {
        type Spoil = fn(&mut SpotCheck);
        let cases: [(&str, Spoil); 9] = [
            ("version", |c| c.version = 2),
            ("token_id", |c| c.token_id = "0x1234".into()),
            ("minted_by", |c| c.minted_by = "34".repeat(20)),
            ("signature", |c| c.signature = format!("0x{}", "zz".repeat(65))),
            ("checker envelope engine", |c| c.checker_envelope.engine = "candle\n0.11".into()),
            ("minted envelope device_class", |c| c.minted_envelope.device_class = String::new()),
            ("its own token", |c| c.checker = c.minted_by.clone()),
            ("contradicts", |c| c.outcome = Outcome::Mismatch),
            ("contradicts", |c| c.regenerated_pixel_digest = format!("0x{}", "57".repeat(32))),
        ];
        for (field, spoil) in cases {
            let mut check = check();
            spoil(&mut check);
            let error = check.validate_shape().expect_err(field);
            assert!(error.contains(field), "{field}: {error}");
        }
        let mismatch = SpotCheck {
            regenerated_pixel_digest: format!("0x{}", "57".repeat(32)),
            outcome: Outcome::Mismatch,
            ..check()
        };
        assert_eq!(mismatch.validate_shape(), Ok(()));
        // Across envelopes, a near picture is similar and a far one a mismatch; never on one envelope.
        let mut gpu = SpotCheck {
            perceptual_distance: Some(SIMILAR_MAX_DISTANCE),
            outcome: Outcome::Similar,
            ..mismatch.clone()
        };
        gpu.checker_envelope.device_class = "cuda".into();
        assert_eq!(gpu.validate_shape(), Ok(()));
        let far = SpotCheck { perceptual_distance: Some(SIMILAR_MAX_DISTANCE + 1), ..gpu.clone() };
        assert!(far.validate_shape().unwrap_err().contains("it is mismatch"));
        let same_device =
            SpotCheck { perceptual_distance: Some(0), outcome: Outcome::Similar, ..mismatch.clone() };
        assert!(same_device.validate_shape().unwrap_err().contains("it is mismatch"));
        let unmeasured = SpotCheck { perceptual_distance: None, ..gpu.clone() };
        assert!(unmeasured.validate_shape().is_err());
        let impossible = SpotCheck { perceptual_distance: Some(65), outcome: Outcome::Mismatch, ..gpu };
        assert!(impossible.validate_shape().unwrap_err().contains("exceeds 64"));
    }

    #[test]
    fn a_step_check_signs_its_steps_and_its_outcome_follows_the_failure() {
        let plain = check();
        let passed = SpotCheck { step_check: Some(StepCheck { steps: vec![2, 7], failed: None }), ..check() };
        assert_eq!(passed.validate_shape(), Ok(()));
        assert!(!passed.regenerated());
        let text = passed.signed_text(31337, "0x01");
        assert!(text.starts_with(&plain.signed_text(31337, "0x01")), "older checks sign the same text");
        assert!(text.ends_with("\nsteps replayed: 2,7\nsteps failed: none"), "{text}");
        let failed = |failed: &str| SpotCheck {
            outcome: Outcome::Mismatch,
            step_check: Some(StepCheck { steps: vec![2, 7], failed: Some(failed.into()) }),
            ..check()
        };
        for ok in ["step 7", "trace", "initial", "decode"] {
            assert_eq!(failed(ok).validate_shape(), Ok(()), "{ok}");
        }
        assert!(failed("step 3").validate_shape().is_err(), "a step it did not replay");
        assert!(failed("weather").validate_shape().is_err());
        assert_ne!(failed("step 7").signed_text(1, "0x01"), passed.signed_text(1, "0x01"));
        // A failure with a match outcome, or a pass with a mismatch, contradicts itself.
        let claimed_match = SpotCheck { outcome: Outcome::Match, ..failed("step 2") };
        assert!(claimed_match.validate_shape().unwrap_err().contains("contradicts"));
        let claimed_mismatch = SpotCheck { outcome: Outcome::Mismatch, ..passed.clone() };
        assert!(claimed_mismatch.validate_shape().is_err());
        let unordered =
            SpotCheck { step_check: Some(StepCheck { steps: vec![7, 2], failed: None }), ..check() };
        assert!(unordered.validate_shape().is_err());
        assert_eq!(SpotCheck::decode(&passed.encode().unwrap()).unwrap(), passed);
    }

    #[test]
    fn oversized_garbage_and_misshapen_bytes_are_refused() {
        assert!(matches!(
            SpotCheck::decode(&vec![b' '; MAX_SPOT_CHECK_BYTES + 1]),
            Err(SpotCheckError::TooLarge { .. })
        ));
        assert!(matches!(SpotCheck::decode(b"{\"version\":"), Err(SpotCheckError::Malformed(_))));
        let bad = SpotCheck { checker: "nobody".into(), ..check() };
        assert!(matches!(
            SpotCheck::decode(&serde_json::to_vec(&bad).unwrap()),
            Err(SpotCheckError::Shape(_))
        ));
    }
}
