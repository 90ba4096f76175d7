// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {GenmintFixture} from "./utils/GenmintFixture.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";

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
