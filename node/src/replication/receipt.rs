//! Pin receipts' signatures: the holder's operator key signs (EIP-191 `personal_sign`) the
//! receipt's text, which names the deployment, so anyone can recover who vouches for a copy.

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use genmint_p2p::pin::PinReceipt;

/// Fills in `receipt.holder` and `receipt.signature` with `operator`'s.
pub fn sign(
    operator: &PrivateKeySigner,
    receipt: &mut PinReceipt,
    chain_id: u64,
    contract: Address,
) -> Result<(), alloy::signers::Error> {
    receipt.holder = format!("{:#x}", operator.address());
    let text = receipt.signed_text(chain_id, &contract.to_string());
    receipt.signature = operator.sign_message_sync(text.as_bytes())?.to_string();
    Ok(())
}

/// The holder, when the receipt is well formed and its signature recovers to the holder it names
/// for the deployment `(chain_id, contract)`.
pub fn verify(receipt: &PinReceipt, chain_id: u64, contract: Address) -> Result<Address, String> {
    receipt.validate_shape()?;
    let holder: Address = receipt.holder.parse().map_err(|e| format!("holder {:?}: {e}", receipt.holder))?;
    let signature: Signature =
        receipt.signature.parse().map_err(|e| format!("the signature is unreadable: {e}"))?;
    let text = receipt.signed_text(chain_id, &contract.to_string());
    let signer = signature
        .recover_address_from_msg(text.as_bytes())
        .map_err(|e| format!("the signature does not recover: {e}"))?;
    if signer != holder {
        return Err(format!(
            "signed by {signer}, not by the holder {holder} (or for another chain or contract)"
        ));
    }
    Ok(holder)
}

/// Whether the receipt is for this token's content exactly.
pub fn covers(receipt: &PinReceipt, token_id: &str, image_cid: &str, metadata_cid: &str) -> bool {
    receipt.token_id.eq_ignore_ascii_case(token_id)
        && receipt.image_cid == image_cid
        && receipt.metadata_cid == metadata_cid
}

#[cfg(test)]
mod tests {
    use genmint_p2p::pin::PIN_RECEIPT_VERSION;

    use super::*;

    pub(crate) fn unsigned() -> PinReceipt {
        PinReceipt {
            version: PIN_RECEIPT_VERSION,
            token_id: format!("0x{}", "ab".repeat(32)),
            image_cid: "bafkreiimage".into(),
            metadata_cid: "bafkreimetadata".into(),
            holder: String::new(),
            holder_peer_id: "12D3KooWholder".into(),
            kubo_peer_id: "12D3KooWkubo".into(),
            kubo_addresses: vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWkubo".into()],
            bytes: 10,
            pinned_at: 1_700_000_000,
            signature: String::new(),
        }
    }

    #[test]
    fn a_receipt_verifies_only_as_signed_by_its_holder_on_its_deployment() {
        let (operator, contract) = (PrivateKeySigner::random(), Address::repeat_byte(7));
        let mut receipt = unsigned();
        sign(&operator, &mut receipt, 31337, contract).unwrap();
        assert_eq!(verify(&receipt, 31337, contract), Ok(operator.address()));
        assert!(verify(&receipt, 1, contract).is_err(), "another chain");
        assert!(verify(&receipt, 31337, Address::repeat_byte(8)).is_err(), "another contract");
        let moved =
            PinReceipt { kubo_addresses: vec!["/ip4/10.0.0.1/tcp/1/p2p/x".into()], ..receipt.clone() };
        assert!(verify(&moved, 31337, contract).unwrap_err().contains("not by the holder"));
        let claimed = PinReceipt { holder: format!("{:#x}", Address::repeat_byte(9)), ..receipt.clone() };
        assert!(verify(&claimed, 31337, contract).is_err());
        assert!(covers(
            &receipt,
            &receipt.token_id.to_uppercase().replace("0X", "0x"),
            "bafkreiimage",
            "bafkreimetadata"
        ));
        assert!(!covers(&receipt, &receipt.token_id, "bafkreiother", "bafkreimetadata"));
    }
}
