// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title RawCid
/// @notice Writes the CIDv1 of a raw block from its sha2-256 digest, in the multibase base32 form
/// IPFS prints (`bafkrei...`, 59 characters). genmint's metadata documents are single raw blocks
/// (under the 1 MiB chunk size), so 32 bytes of storage rebuild their CID.
/// @dev Binary CID: 0x01 (CIDv1) 0x55 (raw) 0x12 (sha2-256) 0x20 (32 bytes) then the digest: 288 bits,
/// written as "b" and 58 base32 characters (RFC 4648 lower case, unpadded, so the last character
/// carries two zero bits). The prefix's first 30 bits are always "afkrei"; the 52 characters after
/// them encode 260 bits: the prefix's two last (zero) bits, the digest, two zero bits. Those are
/// spread five bits to a byte in two words (32 and 20 characters) and mapped to ASCII in parallel.
library RawCid {
    /// Characters in the string form.
    uint256 internal constant LENGTH = 59;

    /// "b" and the six characters of the CIDv1 raw sha2-256 prefix, left-aligned.
    bytes32 private constant _PREFIX = "bafkrei";

    // Masks for spreading 160 bits into 32 bytes of 5 bits each; every step halves the field width
    // and doubles its spacing. Bits [40, 80) of each 128-bit lane, [20, 40) of each 64-bit lane,
    // [10, 20) of each 32-bit lane, [5, 10) of each 16-bit lane.
    uint256 private constant _LANE40 = (((1 << 40) - 1) << 40) * (1 | (1 << 128));
    uint256 private constant _LANE20 = (((1 << 20) - 1) << 20) * _EVERY_64;
    uint256 private constant _LANE10 = (((1 << 10) - 1) << 10) * _EVERY_32;
    uint256 private constant _LANE5 = (((1 << 5) - 1) << 5) * _EVERY_16;
    uint256 private constant _EVERY_64 = 1 | (1 << 64) | (1 << 128) | (1 << 192);
    uint256 private constant _EVERY_32 = _EVERY_64 | (_EVERY_64 << 32);
    uint256 private constant _EVERY_16 = _EVERY_32 | (_EVERY_32 << 16);
    uint256 private constant _EVERY_8 = _EVERY_16 | (_EVERY_16 << 8);

    /// @notice The base32 CIDv1 string of the raw block whose sha2-256 digest is `digest`.
    function fromSha256(bytes32 digest) internal pure returns (string memory cid) {
        uint256 d = uint256(digest);
        // Characters 7-38: two zero bits and the digest's top 158 bits.
        uint256 head = _base32Chars(d >> 98);
        // Characters 39-58: the digest's low 98 bits and two zero bits, left-aligned in the word.
        uint256 tail = _base32Chars((d & ((1 << 98) - 1)) << 2) << 96;
        cid = new string(LENGTH);
        assembly ("memory-safe") {
            let out := add(cid, 32)
            // Each store overwrites the previous one's tail; the last writes zeros past the string,
            // inside its 64-byte allocation and the free scratch after it.
            mstore(out, _PREFIX)
            mstore(add(out, 7), head)
            mstore(add(out, 39), tail)
        }
    }

    /// @notice keccak256 of `fromSha256(digest)`, without allocating the string.
    function keccakOf(bytes32 digest) internal pure returns (bytes32 hash) {
        uint256 d = uint256(digest);
        uint256 head = _base32Chars(d >> 98);
        uint256 tail = _base32Chars((d & ((1 << 98) - 1)) << 2) << 96;
        assembly ("memory-safe") {
            // Scratch past the free memory pointer.
            let out := mload(0x40)
            mstore(out, _PREFIX)
            mstore(add(out, 7), head)
            mstore(add(out, 39), tail)
            hash := keccak256(out, LENGTH)
        }
    }

    /// @dev 32 base32 characters, one per byte, for the 160 bits `v` (the first character in the
    /// most significant byte). `v` must be below 2^160.
    function _base32Chars(uint256 v) private pure returns (uint256 chars) {
        unchecked {
            uint256 x = ((v >> 80) << 128) | (v & ((1 << 80) - 1));
            x = ((x & _LANE40) << 24) | (x & ~_LANE40);
            x = ((x & _LANE20) << 12) | (x & ~_LANE20);
            x = ((x & _LANE10) << 6) | (x & ~_LANE10);
            x = ((x & _LANE5) << 3) | (x & ~_LANE5);
            // Each byte now holds a value below 32: 0-25 map to 'a'-'z' (0x61 + v), 26-31 to
            // '2'-'7' (0x18 + v). v + 6 reaches bit 5 exactly when v >= 26.
            uint256 digits = ((x + 6 * _EVERY_8) >> 5) & _EVERY_8;
            chars = x + 0x61 * _EVERY_8 - 0x49 * digits;
        }
    }
}
