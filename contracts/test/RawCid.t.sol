// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Vm.sol";
import {RawCid} from "../src/RawCid.sol";

/// @notice RawCid against CIDs printed by IPFS and against a plain bit-by-bit base32 encoder.
contract RawCidTest is Test {
    function test_MatchesCidsIpfsPrints() public pure {
        assertEq(
            RawCid.fromSha256(0x9b1b4dae9864c55ef2b56be85ef06bf394fba2667709a60e35d376b53f3b6998),
            "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta",
            "image vector"
        );
        assertEq(
            RawCid.fromSha256(0x204212bbadc3f05b49cc2843c7b0494c747b189b559dc3ecd4d91f15480d0012),
            "bafkreibaiijlxlod6bnuttbiipd3askmor5rrg2vtxb6zvgzd4kuqdiaci",
            "metadata vector"
        );
        // sha256("") and the extremes of the digest space.
        assertEq(
            RawCid.fromSha256(sha256("")), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "empty block"
        );
        assertEq(RawCid.fromSha256(0), "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "zero");
        assertEq(
            RawCid.fromSha256(bytes32(type(uint256).max)),
            "bafkreih777777777777777777777777777777777777777777777777774",
            "all ones"
        );
    }

    function testFuzz_MatchesAPlainEncoder(bytes32 digest) public pure {
        string memory cid = RawCid.fromSha256(digest);
        assertEq(cid, _plain(digest), "base32");
        assertEq(RawCid.keccakOf(digest), keccak256(bytes(cid)), "keccakOf");
    }

    /// @dev "b" and RFC 4648 base32 of 0x01551220 || digest, five bits at a time.
    function _plain(bytes32 digest) internal pure returns (string memory) {
        bytes memory binary = abi.encodePacked(hex"01551220", digest);
        bytes memory alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        bytes memory out = new bytes(59);
        out[0] = "b";
        for (uint256 i = 0; i < 58; i++) {
            uint256 value = 0;
            for (uint256 bit = 5 * i; bit < 5 * i + 5; bit++) {
                uint256 b = bit < 288 ? (uint8(binary[bit / 8]) >> (7 - bit % 8)) & 1 : 0;
                value = (value << 1) | b;
            }
            out[i + 1] = alphabet[value];
        }
        return string(out);
    }
}
