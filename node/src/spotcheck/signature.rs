//! The checker's signature: its operator key signs (EIP-191 `personal_sign`) the check's text,
//! which names the deployment, so anyone can recover who vouches for a check and on which network.

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use genmint_p2p::spot_check::{SpotCheck, SpotCheckVerifier};

/// Why a check could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the check names checker {named} but the operator key is {operator}")]
    NotOurs { named: String, operator: Address },
    #[error("signing the spot check: {0}")]
    Signer(#[from] alloy::signers::Error),
}

/// Fills in `check.signature` with `operator`'s signature for the deployment `(chain_id, contract)`.
pub fn sign(
    operator: &PrivateKeySigner,
    check: &mut SpotCheck,
    chain_id: u64,
    contract: Address,
) -> Result<(), SignError> {
    if check.checker.parse::<Address>().ok() != Some(operator.address()) {
        return Err(SignError::NotOurs { named: check.checker.clone(), operator: operator.address() });
    }
    let text = check.signed_text(chain_id, &contract.to_string());
    check.signature = operator.sign_message_sync(text.as_bytes())?.to_string();
    Ok(())
}

/// Accepts checks for this deployment whose signature recovers to their checker.
pub struct SignatureVerifier {
    pub chain_id: u64,
    pub contract: Address,
}

impl SpotCheckVerifier for SignatureVerifier {
    fn verify(&self, check: &SpotCheck) -> Result<(), String> {
        let checker: Address =
            check.checker.parse().map_err(|e| format!("checker {:?}: {e}", check.checker))?;
        let signature: Signature =
            check.signature.parse().map_err(|e| format!("the signature is unreadable: {e}"))?;
        let text = check.signed_text(self.chain_id, &self.contract.to_string());
        let signer = signature
            .recover_address_from_msg(text.as_bytes())
            .map_err(|e| format!("the signature does not recover: {e}"))?;
        if signer != checker {
            return Err(format!(
                "signed by {signer}, not by the checker {checker} (or for another chain or contract)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use genmint_p2p::spot_check::{CheckEnvelope, Outcome, SPOT_CHECK_VERSION};

    use super::*;

    fn check(checker: Address) -> SpotCheck {
        let envelope = CheckEnvelope {
            engine: "candle 0.11.1 / genmint-model-runtime 0.1.0".into(),
            dtype: "f32".into(),
            device_class: "cpu".into(),
        };
        SpotCheck {
            version: SPOT_CHECK_VERSION,
            token_id: format!("0x{}", "ab".repeat(32)),
            model_hash: format!("0x{}", "11".repeat(32)),
            minted_by: Address::repeat_byte(2).to_string(),
            expected_pixel_digest: format!("0x{}", "33".repeat(32)),
            regenerated_pixel_digest: format!("0x{}", "44".repeat(32)),
            perceptual_distance: None,
            outcome: Outcome::Mismatch,
            checker: checker.to_string(),
            checker_envelope: envelope.clone(),
            minted_envelope: envelope,
            checked_at: 1_700_000_000,
            signature: String::new(),
            step_check: None,
        }
    }

    #[test]
    fn a_check_verifies_only_as_signed_by_its_checker_on_its_deployment() {
        let (operator, contract) = (PrivateKeySigner::random(), Address::repeat_byte(7));
        let verifier = SignatureVerifier { chain_id: 31337, contract };
        let mut signed = check(operator.address());
        sign(&operator, &mut signed, 31337, contract).unwrap();
        assert_eq!(signed.validate_shape(), Ok(()));
        assert_eq!(verifier.verify(&signed), Ok(()));

        // Any changed field, another checker, or another deployment breaks it.
        let altered = SpotCheck {
            regenerated_pixel_digest: signed.expected_pixel_digest.clone(),
            outcome: Outcome::Match,
            ..signed.clone()
        };
        assert!(verifier.verify(&altered).unwrap_err().contains("not by the checker"));
        let claimed = SpotCheck { checker: Address::repeat_byte(9).to_string(), ..signed.clone() };
        assert!(verifier.verify(&claimed).is_err());
        assert!(SignatureVerifier { chain_id: 1, contract }.verify(&signed).is_err());
        let other_contract = SignatureVerifier { chain_id: 31337, contract: Address::repeat_byte(8) };
        assert!(other_contract.verify(&signed).is_err());
        let garbage = SpotCheck { signature: "0x1234".into(), ..signed };
        assert!(verifier.verify(&garbage).unwrap_err().contains("unreadable"));
    }

    #[test]
    fn an_operator_signs_only_checks_in_its_own_name() {
        let operator = PrivateKeySigner::random();
        let mut someone_elses = check(Address::repeat_byte(9));
        let error = sign(&operator, &mut someone_elses, 31337, Address::repeat_byte(7)).unwrap_err();
        assert!(error.to_string().contains("operator key"), "{error}");
    }
}
