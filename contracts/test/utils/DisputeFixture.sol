// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {GenmintFixture} from "./GenmintFixture.sol";
import {GenmintNFT} from "../../src/GenmintNFT.sol";
import {Signing} from "./Signing.sol";

/// @notice The fixture with a forger node, a challenger and three re-checkers that joined by stake,
/// and helpers that mint a forged token and open, vote on and resolve its dispute.
abstract contract DisputeFixture is GenmintFixture {
    uint256 internal constant FORGER_KEY = 0xf0f0;
    uint256 internal constant CHALLENGER_KEY = 0xc4a1;
    uint256 internal constant CHECKER_KEY = 0xc4e0;

    address internal forger;
    address internal challenger;
    address[3] internal checkers;
    /// `DISPUTE_BOND`, read once: a view call between a prank or a revert expectation and its call
    /// would take it.
    uint256 internal disputeBond;

    function setUp() public virtual override {
        super.setUp();
        disputeBond = nft.DISPUTE_BOND();
        forger = _staked(FORGER_KEY);
        challenger = _staked(CHALLENGER_KEY);
        for (uint256 i = 0; i < 3; i++) {
            checkers[i] = _staked(CHECKER_KEY + i);
        }
    }

    /// @dev A funded operator that joined by staking `NODE_STAKE`.
    function _staked(uint256 key) internal returns (address operator) {
        operator = vm.addr(key);
        vm.deal(operator, 1 ether);
        uint256 amount = nft.NODE_STAKE();
        vm.prank(operator);
        nft.stake{value: amount}();
    }

    /// @dev The pixel digest an honest node derives for request `nonce`.
    function _truth(uint256 nonce) internal pure returns (bytes32) {
        return keccak256(abi.encode("pixels", nonce));
    }

    /// @dev Mints request `nonce` with outputs the forger signed over a digest it never derived.
    function _mintForged(uint256 nonce) internal returns (GenmintNFT.Job memory job, uint256 tokenId) {
        GenmintNFT.Output memory output = _output(nonce);
        output.pixelDigest = keccak256(abi.encode("forged", nonce));
        output.node = forger;
        job = Signing.signedJob(nft, _request(nonce), output, CREATOR_KEY, FORGER_KEY);
        tokenId = nft.mint(job);
    }

    function _evidence(GenmintNFT.Job memory job, bytes32 rechecked)
        internal
        pure
        returns (GenmintNFT.Evidence memory)
    {
        return GenmintNFT.Evidence({
            promptHash: keccak256(abi.encode(job.request)),
            attestedDigest: job.output.pixelDigest,
            recheckedDigest: rechecked
        });
    }

    function _open(address by, GenmintNFT.Job memory job, bytes32 rechecked) internal {
        vm.prank(by);
        nft.openDispute{value: disputeBond}(
            job.request, job.output.pixelDigest, job.output.imageCid, job.nodeSignature, rechecked
        );
    }

    function _vote(address by, uint256 tokenId, GenmintNFT.Evidence memory evidence, bytes32 digest) internal {
        vm.prank(by);
        nft.vote(tokenId, evidence, digest);
    }
}
