//! The operator binding: the operator key signs (EIP-191 `personal_sign`) a text naming the node's
//! peer id, chain id and contract, and every advert carries that signature. Receivers recover the
//! signer, so an advert can only claim an operator whose key signed for that peer on this
//! deployment; gossipsub's own peer-key signature covers the rest of the advert.

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use genmint_p2p::advert::{Advert, AdvertVerifier, binding_message};

/// Signs the binding of `peer_id` to the operator on the deployment `(chain_id, contract)`.
pub fn sign_binding(
    operator: &PrivateKeySigner,
    peer_id: &str,
    chain_id: u64,
    contract: Address,
) -> Result<String, alloy::signers::Error> {
    let message = binding_message(peer_id, chain_id, &contract.to_string());
    Ok(operator.sign_message_sync(message.as_bytes())?.to_string())
}

/// Accepts adverts for this deployment whose binding signature recovers to their operator.
pub struct BindingVerifier {
    pub chain_id: u64,
    pub contract: Address,
}

impl AdvertVerifier for BindingVerifier {
    fn verify(&self, advert: &Advert) -> Result<(), String> {
        if advert.chain_id != self.chain_id {
            return Err(format!(
                "advert is for chain {}, this network is chain {}",
                advert.chain_id, self.chain_id
            ));
        }
        let contract: Address =
            advert.contract.parse().map_err(|e| format!("contract {:?}: {e}", advert.contract))?;
        if contract != self.contract {
            return Err(format!("advert is for contract {contract}, this network uses {}", self.contract));
        }
        let operator: Address =
            advert.operator.parse().map_err(|e| format!("operator {:?}: {e}", advert.operator))?;
        let signature: Signature =
            advert.binding_signature.parse().map_err(|e| format!("binding signature is unreadable: {e}"))?;
        let message = binding_message(&advert.peer_id, advert.chain_id, &advert.contract);
        let signer = signature
            .recover_address_from_msg(message.as_bytes())
            .map_err(|e| format!("binding signature does not recover: {e}"))?;
        if signer != operator {
            return Err(format!("binding is signed by {signer}, not by the advertised operator {operator}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(operator: &PrivateKeySigner, signature: String) -> Advert {
        Advert {
            peer_id: "12D3KooWPeer".into(),
            operator: operator.address().to_string(),
            chain_id: 31337,
            contract: Address::repeat_byte(7).to_string(),
            binding_signature: signature,
            models: Vec::new(),
            devices: vec!["cpu".into()],
            queue_depth: 0,
            capacity: 1,
            price_wei: "0".into(),
            sequence: 1,
            issued_at: 0,
            refresh_secs: None,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn a_binding_verifies_only_for_its_operator_peer_and_deployment() {
        let operator = PrivateKeySigner::random();
        let contract = Address::repeat_byte(7);
        let verifier = BindingVerifier { chain_id: 31337, contract };
        let signature = sign_binding(&operator, "12D3KooWPeer", 31337, contract).unwrap();
        let good = advert(&operator, signature.clone());
        assert_eq!(verifier.verify(&good), Ok(()));

        let mut other_peer = good.clone();
        other_peer.peer_id = "12D3KooWOther".into();
        assert!(verifier.verify(&other_peer).unwrap_err().contains("not by the advertised operator"));

        let impostor = advert(&PrivateKeySigner::random(), signature);
        assert!(verifier.verify(&impostor).is_err());

        let other_chain = BindingVerifier { chain_id: 1, contract };
        assert!(other_chain.verify(&good).unwrap_err().contains("chain"));

        let mut garbage = good;
        garbage.binding_signature = "0x1234".into();
        assert!(verifier.verify(&garbage).unwrap_err().contains("unreadable"));
    }
}
