//! What the API shows of a token's spot checks: each check, and whether any peer re-generated a
//! different picture than the mint attested (bit-exact and near pictures from other hardware are
//! fine), with whether it generated the same way.

use genmint_p2p::spot_check::{Outcome, SIMILAR_MAX_DISTANCE, SpotCheck, StepCheck};
use serde::Serialize;

/// One node's check of the token: every signed field, so anyone can verify the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerCheck {
    /// The checking node's operator address.
    pub checker: String,
    pub outcome: Outcome,
    pub expected_pixel_digest: String,
    pub regenerated_pixel_digest: String,
    /// dHash bits in which the re-generation differs from the minted image, when the digests differ.
    pub perceptual_distance: Option<u32>,
    /// How the checker generated, and how the minting node says it did.
    pub engine: String,
    pub dtype: String,
    pub device_class: String,
    pub minted_engine: String,
    pub minted_dtype: String,
    pub minted_device_class: String,
    /// Whether the checker used the minting node's engine, dtype and device class; a mismatch
    /// without it may be the hardware rather than the node.
    pub same_envelope: bool,
    pub minted_by: String,
    pub model_hash: String,
    pub checked_at: u64,
    /// The format of the signed text (`genmint spot check v{version}`).
    pub version: u32,
    /// The checker's EIP-191 signature over the check's text (see the README).
    pub signature: String,
    /// The steps replayed, for a check of the latent trace instead of a re-generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_check: Option<StepCheck>,
}

/// A token's spot checks, as the provenance endpoint adds them to the verification report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerChecks {
    pub peer_checks: Vec<PeerCheck>,
    /// False as soon as one check re-generated a different picture (`mismatch`); bit-exact (`match`)
    /// and near pictures from other hardware (`similar`) keep it true.
    pub peer_checks_ok: bool,
    pub peer_checks_summary: String,
}

impl PeerChecks {
    pub fn new(checks: &[SpotCheck]) -> Self {
        let peer_checks: Vec<PeerCheck> = checks
            .iter()
            .map(|check| PeerCheck {
                checker: check.checker.clone(),
                outcome: check.outcome,
                expected_pixel_digest: check.expected_pixel_digest.clone(),
                regenerated_pixel_digest: check.regenerated_pixel_digest.clone(),
                perceptual_distance: check.perceptual_distance,
                engine: check.checker_envelope.engine.clone(),
                dtype: check.checker_envelope.dtype.clone(),
                device_class: check.checker_envelope.device_class.clone(),
                minted_engine: check.minted_envelope.engine.clone(),
                minted_dtype: check.minted_envelope.dtype.clone(),
                minted_device_class: check.minted_envelope.device_class.clone(),
                same_envelope: check.same_envelope(),
                minted_by: check.minted_by.clone(),
                model_hash: check.model_hash.clone(),
                checked_at: check.checked_at,
                version: check.version,
                signature: check.signature.clone(),
                step_check: check.step_check.clone(),
            })
            .collect();
        let mismatches: Vec<&PeerCheck> =
            peer_checks.iter().filter(|check| check.outcome == Outcome::Mismatch).collect();
        let count = |outcome| peer_checks.iter().filter(|check| check.outcome == outcome).count();
        let (total, matched, similar) = (peer_checks.len(), count(Outcome::Match), count(Outcome::Similar));
        let nodes = |n: usize| if n == 1 { "1 node".to_owned() } else { format!("{n} nodes") };
        let mut parts = Vec::new();
        if !mismatches.is_empty() {
            parts.push(format!(
                "{} of {total} checks re-generated different pixels than the mint attested",
                mismatches.len()
            ));
            let alike = mismatches.iter().filter(|check| check.same_envelope).count();
            if alike > 0 {
                parts.push(format!(
                    "{} generated the way the minting node says it did (same engine, dtype and device class)",
                    nodes(alike)
                ));
            }
            for other in mismatches.iter().filter(|check| !check.same_envelope) {
                let distance =
                    other.perceptual_distance.map_or("unmeasured".to_owned(), |d| format!("{d} of 64"));
                parts.push(format!(
                    "{} generated differently ({} where the minting node used {}) and got a different picture \
                     (dHash distance {distance})",
                    other.checker, other.device_class, other.minted_device_class
                ));
            }
        }
        if matched > 0 {
            parts.push(format!("{} re-generated this token and got the attested pixels", nodes(matched)));
        }
        if similar > 0 {
            parts.push(format!(
                "{} on other hardware got the same picture, not bit for bit (within {SIMILAR_MAX_DISTANCE} of 64 \
                 dHash bits), as expected across device classes",
                nodes(similar)
            ));
        }
        let summary = if total == 0 {
            "no other node has re-generated this token yet".to_owned()
        } else {
            parts.join("; ")
        };
        Self { peer_checks_ok: mismatches.is_empty(), peer_checks, peer_checks_summary: summary }
    }
}

#[cfg(test)]
mod tests {
    use genmint_p2p::spot_check::{CheckEnvelope, SPOT_CHECK_VERSION};

    use super::*;

    fn check(checker: u8, outcome: Outcome, device_class: &str) -> SpotCheck {
        let envelope = |device_class: &str| CheckEnvelope {
            engine: "e".into(),
            dtype: "f32".into(),
            device_class: device_class.into(),
        };
        let expected = format!("0x{}", "33".repeat(32));
        SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: format!("0x{}", "ab".repeat(32)),
            model_hash: format!("0x{}", "11".repeat(32)),
            minted_by: format!("0x{}", "22".repeat(20)),
            regenerated_pixel_digest: match outcome {
                Outcome::Match => expected.clone(),
                Outcome::Similar | Outcome::Mismatch => format!("0x{}", "44".repeat(32)),
            },
            perceptual_distance: match outcome {
                Outcome::Match => None,
                Outcome::Similar => Some(3),
                Outcome::Mismatch => Some(30),
            },
            expected_pixel_digest: expected,
            outcome,
            checker: format!("0x{}", format!("{checker:02x}").repeat(20)),
            checker_envelope: envelope(device_class),
            minted_envelope: envelope("cpu"),
            checked_at: 1_700_000_000,
            signature: format!("0x{}", "55".repeat(65)),
            step_check: None,
        }
    }

    #[test]
    fn no_checks_and_only_matches_are_ok() {
        let none = PeerChecks::new(&[]);
        assert!(none.peer_checks_ok && none.peer_checks.is_empty(), "{none:?}");
        assert!(none.peer_checks_summary.contains("yet"));
        let matched = PeerChecks::new(&[check(1, Outcome::Match, "cpu"), check(2, Outcome::Match, "cuda")]);
        assert!(matched.peer_checks_ok);
        assert_eq!(
            matched.peer_checks_summary,
            "2 nodes re-generated this token and got the attested pixels"
        );
    }

    #[test]
    fn one_mismatch_makes_it_visible_and_says_whether_the_device_differed() {
        let checks = [
            check(1, Outcome::Match, "cpu"),
            check(2, Outcome::Mismatch, "cpu"),
            check(3, Outcome::Mismatch, "cuda"),
        ];
        let report = PeerChecks::new(&checks);
        assert!(!report.peer_checks_ok);
        let summary = &report.peer_checks_summary;
        assert!(summary.starts_with("2 of 3 checks re-generated different pixels"), "{summary}");
        assert!(summary.contains("1 node generated the way the minting node says"), "{summary}");
        assert!(
            summary.contains(&format!("{} generated differently (cuda where", checks[2].checker)),
            "{summary}"
        );
        assert!(summary.contains("dHash distance 30 of 64"), "{summary}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["peerChecks"][1]["outcome"], "mismatch");
        assert_eq!(json["peerChecks"][2]["sameEnvelope"], false);
        assert_eq!(json["peerChecks"][2]["deviceClass"], "cuda");
        assert_eq!(json["peerChecksOk"], false);
    }

    #[test]
    fn a_near_picture_from_other_hardware_is_fine_and_said_so() {
        let report = PeerChecks::new(&[check(1, Outcome::Match, "cpu"), check(2, Outcome::Similar, "cuda")]);
        assert!(report.peer_checks_ok);
        assert!(
            report.peer_checks_summary.contains("1 node on other hardware got the same picture"),
            "{report:?}"
        );
        assert_eq!(serde_json::to_value(&report).unwrap()["peerChecks"][1]["perceptualDistance"], 3);
    }
}
