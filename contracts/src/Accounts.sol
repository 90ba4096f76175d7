// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What GenmintNFT keeps per account, in the 192 bits its ERC-721 balance word leaves free, so
/// a mint reads and writes the creator's balance, deposit and registry number in one word:
/// funds (bits 0-127, wei) | creator number (128-159) | node number (160-183) | node active (bit 184).
/// Numbers start at 1; 0 means none assigned.
type Account is uint192;

using Accounts for Account global;

/// @title Accounts
/// @notice Field access for `Account`.
library Accounts {
    uint192 private constant _FUNDS = type(uint128).max;
    uint192 private constant _CREATOR = uint192(type(uint32).max) << 128;
    uint192 private constant _NODE = uint192(type(uint24).max) << 160;
    uint192 private constant _ACTIVE = uint192(1) << 184;

    /// @dev Unused deposit plus earned fees, in wei.
    function funds(Account account) internal pure returns (uint128) {
        // forge-lint: disable-next-line(unsafe-typecast) masked to 128 bits
        return uint128(Account.unwrap(account) & _FUNDS);
    }

    /// @dev The account's creator number, assigned at its first mint.
    function creatorId(Account account) internal pure returns (uint32) {
        return uint32((Account.unwrap(account) & _CREATOR) >> 128);
    }

    /// @dev The account's node number, assigned when it is first registered as a node.
    function nodeId(Account account) internal pure returns (uint24) {
        return uint24((Account.unwrap(account) & _NODE) >> 160);
    }

    /// @dev Whether the account may attest generations now.
    function isActiveNode(Account account) internal pure returns (bool) {
        return Account.unwrap(account) & _ACTIVE != 0;
    }

    function withFunds(Account account, uint128 value) internal pure returns (Account) {
        return Account.wrap((Account.unwrap(account) & ~_FUNDS) | value);
    }

    function withCreatorId(Account account, uint32 id) internal pure returns (Account) {
        return Account.wrap((Account.unwrap(account) & ~_CREATOR) | (uint192(id) << 128));
    }

    function withNode(Account account, uint24 id, bool active) internal pure returns (Account) {
        uint192 word = (Account.unwrap(account) & ~(_NODE | _ACTIVE)) | (uint192(id) << 160);
        return Account.wrap(active ? word | _ACTIVE : word);
    }
}
