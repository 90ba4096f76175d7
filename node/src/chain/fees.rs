//! EIP-1559 fees under the operator's ceiling: what a new transaction offers, and what a stuck one
//! offers when it is sent again with the same nonce.
//!
//! A new transaction offers the configured tip and a max fee of twice the latest base fee plus the
//! tip (room for the base fee to rise for several full blocks), never above the ceiling. While the
//! base fee plus the tip is above the ceiling nothing is sent: [`ChainError::FeeAboveCeiling`], a
//! reason to wait. A replacement raises both fees by [`BUMP_PER_MILLE`] at least (nodes refuse a
//! replacement under 10 %), and to what a new transaction would offer now if that is more.

use super::error::ChainError;

/// How much a replacement raises both fees, in thousandths: 12.5 % (nodes require 10 % at least).
pub const BUMP_PER_MILLE: u128 = 125;

/// What the operator pays for gas, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePolicy {
    /// The most a transaction may pay per gas (base fee and tip); `None`: no ceiling.
    pub max_fee_per_gas: Option<u128>,
    /// The tip offered to the block's producer.
    pub priority_fee_per_gas: u128,
}

impl Default for FeePolicy {
    /// 1 gwei tip, no ceiling.
    fn default() -> Self {
        Self { max_fee_per_gas: None, priority_fee_per_gas: 1_000_000_000 }
    }
}

/// The two EIP-1559 fees of one transaction, wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl FeePolicy {
    /// The fees of a new transaction while the latest block's base fee is `base_fee`.
    pub fn fees_for(&self, base_fee: u128) -> Result<Fees, ChainError> {
        let tip = self.priority_fee_per_gas;
        let needed = base_fee.saturating_add(tip);
        let wanted = base_fee.saturating_mul(2).saturating_add(tip);
        match self.max_fee_per_gas {
            Some(ceiling) if needed > ceiling => Err(ChainError::FeeAboveCeiling { base_fee, tip, ceiling }),
            Some(ceiling) => Ok(Fees { max_fee_per_gas: wanted.min(ceiling), max_priority_fee_per_gas: tip }),
            None => Ok(Fees { max_fee_per_gas: wanted, max_priority_fee_per_gas: tip }),
        }
    }

    /// The fees that replace a stuck transaction that offered `old`, with the base fee at
    /// `base_fee`: both raised by [`BUMP_PER_MILLE`] at least. Refused when the ceiling leaves no
    /// room for the raise.
    pub fn bumped(&self, old: Fees, base_fee: u128) -> Result<Fees, ChainError> {
        let raise = |fee: u128| fee.saturating_mul(1000 + BUMP_PER_MILLE).div_ceil(1000);
        let tip = raise(old.max_priority_fee_per_gas).max(self.priority_fee_per_gas);
        let now = base_fee.saturating_mul(2).saturating_add(tip);
        let max_fee = raise(old.max_fee_per_gas).max(now).max(tip);
        match self.max_fee_per_gas {
            Some(ceiling) if max_fee > ceiling => Err(ChainError::FeeAboveCeiling { base_fee, tip, ceiling }),
            _ => Ok(Fees { max_fee_per_gas: max_fee, max_priority_fee_per_gas: tip }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    fn policy(ceiling: Option<u128>) -> FeePolicy {
        FeePolicy { max_fee_per_gas: ceiling.map(|c| c * GWEI), priority_fee_per_gas: GWEI }
    }

    #[test]
    fn a_new_transaction_offers_twice_the_base_fee_plus_the_tip_within_the_ceiling() {
        let fees = policy(None).fees_for(10 * GWEI).unwrap();
        assert_eq!(fees, Fees { max_fee_per_gas: 21 * GWEI, max_priority_fee_per_gas: GWEI });
        let capped = policy(Some(15)).fees_for(10 * GWEI).unwrap();
        assert_eq!(capped.max_fee_per_gas, 15 * GWEI, "capped, still above base fee and tip");
        let err = policy(Some(15)).fees_for(15 * GWEI).unwrap_err();
        assert!(matches!(err, ChainError::FeeAboveCeiling { .. }), "{err}");
        assert!(!err.is_permanent(), "a dear chain is a reason to wait");
    }

    #[test]
    fn a_replacement_raises_both_fees_by_at_least_ten_percent_and_follows_the_base_fee() {
        let old = Fees { max_fee_per_gas: 21 * GWEI, max_priority_fee_per_gas: GWEI };
        let bumped = policy(None).bumped(old, GWEI).unwrap();
        assert!(bumped.max_fee_per_gas * 100 >= old.max_fee_per_gas * 110, "{bumped:?}");
        assert!(bumped.max_priority_fee_per_gas * 100 >= old.max_priority_fee_per_gas * 110, "{bumped:?}");
        let risen = policy(None).bumped(old, 40 * GWEI).unwrap();
        assert!(risen.max_fee_per_gas >= 81 * GWEI, "what a new transaction would offer now: {risen:?}");
        assert!(matches!(policy(Some(22)).bumped(old, GWEI), Err(ChainError::FeeAboveCeiling { .. })));
    }
}
