// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The Foundry cheatcodes the genmint tests and scripts use, declared with the same
/// signatures as forge-std so the selectors match; forge serves them at the standard address.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // Accounts and signatures.
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function label(address account, string calldata newLabel) external;

    // Scripts.
    function startBroadcast() external;
    function startBroadcast(uint256 privateKey) external;
    function envOr(string calldata name, address defaultValue) external view returns (address value);
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256 value);
    function stopBroadcast() external;

    // Caller, time and chain.
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function warp(uint256 newTimestamp) external;
    function roll(uint256 newHeight) external;
    function chainId(uint256 newChainId) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;
    function deal(address account, uint256 newBalance) external;

    // Expectations.
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function assume(bool condition) external pure;

    // Files and JSON.
    function projectRoot() external view returns (string memory path);
    function readFile(string calldata path) external view returns (string memory data);
    function writeFile(string calldata path, string calldata data) external;
    function keyExistsJson(string calldata json, string calldata key) external view returns (bool);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonBytes(string calldata json, string calldata key) external pure returns (bytes memory);
    function parseJsonAddress(string calldata json, string calldata key) external pure returns (address);
    function parseUint(string calldata stringifiedValue) external pure returns (uint256 parsedValue);

    // Formatting.
    function toString(uint256 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(bytes calldata value) external pure returns (string memory);
}

/// @notice Minimal test base: the cheatcode handle and assertions that revert with both values.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) revert(string.concat("assertTrue failed: ", what));
    }

    function assertEq(uint256 left, uint256 right, string memory what) internal pure {
        if (left != right) {
            revert(string.concat(what, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }

    function assertEq(address left, address right, string memory what) internal pure {
        if (left != right) {
            revert(string.concat(what, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }

    function assertEq(bytes32 left, bytes32 right, string memory what) internal pure {
        if (left != right) {
            revert(string.concat(what, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }

    function assertEq(bool left, bool right, string memory what) internal pure {
        if (left != right) {
            revert(string.concat(what, ": ", left ? "true" : "false", " != ", right ? "true" : "false"));
        }
    }

    function assertEq(string memory left, string memory right, string memory what) internal pure {
        if (keccak256(bytes(left)) != keccak256(bytes(right))) {
            revert(string.concat(what, ": \"", left, "\" != \"", right, "\""));
        }
    }

    function assertEq(bytes memory left, bytes memory right, string memory what) internal pure {
        if (keccak256(left) != keccak256(right)) {
            revert(string.concat(what, ": ", vm.toString(left), " != ", vm.toString(right)));
        }
    }
}
