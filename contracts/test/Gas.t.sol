// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {GenmintFixture} from "./utils/GenmintFixture.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {DisputeFixture} from "./utils/DisputeFixture.sol";

/// @notice The mint paths for the committed gas snapshot (.gas-snapshot, compared by scripts/test.sh):
/// each test prepares its jobs and makes one call. Whole-transaction figures, with calldata, come from
/// scripts/gas-benchmark.sh.
contract GasTest is GenmintFixture {
    function setUp() public override {
        super.setUp();
        // The creator already holds a token, as in the benchmark's "existing holder" case.
        nft.mint(_job(0));
    }

    function test_Gas_MintExistingHolder() public {
        nft.mint(_job(1));
    }

    function test_Gas_MintNewCreator() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.creator = stranger;
        request.fee = 0;
        nft.mint(_job(request, _output(1), STRANGER_KEY, NODE_KEY));
    }

    function test_Gas_MintBatch20() public {
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](20);
        for (uint256 i = 0; i < 20; i++) {
            jobs[i] = _job(10 + i);
        }
        nft.mintBatch(jobs);
    }

    function test_Gas_Withdraw() public {
        vm.prank(node);
        nft.withdraw(FEE);
    }

    function test_Gas_TransferFrom() public {
        uint256 tokenId = uint256(nft.hashRequest(_request(0)));
        vm.prank(creator);
        nft.transferFrom(creator, stranger, tokenId);
    }
}

/// @notice Open membership and the dispute path for the gas snapshot: each test makes one call.
contract DisputeGasTest is DisputeFixture {
    GenmintNFT.Job internal forged;
    uint256 internal forgedId;
    GenmintNFT.Evidence internal evidence;

    function setUp() public override {
        super.setUp();
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        forged = job;
        forgedId = tokenId;
        evidence = _evidence(job, _truth(0));
        vm.deal(stranger, 1 ether);
    }

    function test_Gas_StakeJoins() public {
        vm.prank(stranger);
        nft.stake{value: 0.1 ether}();
    }

    function test_Gas_RequestUnstake() public {
        vm.prank(checkers[0]);
        nft.requestUnstake(0.1 ether);
    }

    function test_Gas_WithdrawStake() public {
        vm.prank(checkers[0]);
        nft.requestUnstake(0.1 ether);
        vm.warp(NOW + 7 days);
        vm.prank(checkers[0]);
        nft.withdrawStake();
    }

    function test_Gas_BondModel() public {
        vm.prank(stranger);
        nft.bondModel{value: 0.05 ether}(keccak256("bonded"), "tiny-sd-bonded", "stranger", "https://genmint.invalid/l");
    }

    function test_Gas_OpenDispute() public {
        _open(challenger, forged, _truth(0));
    }

    function test_Gas_VoteFirst() public {
        _open(challenger, forged, _truth(0));
        _vote(checkers[0], forgedId, evidence, _truth(0));
    }

    function test_Gas_ResolveFraud() public {
        _open(challenger, forged, _truth(0));
        _vote(checkers[0], forgedId, evidence, _truth(0));
        _vote(checkers[1], forgedId, evidence, _truth(0));
        vm.warp(NOW + 2 days);
        nft.resolveDispute(forgedId, evidence);
    }
}
