// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";
import {DisputeFixture} from "./utils/DisputeFixture.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";

/// @notice Open membership (stake, unstake, model bonds) and disputes of forged tokens, path by path.
contract StakeTest is DisputeFixture {
    function test_StakingMakesANode() public {
        address operator = vm.addr(0x5e1f);
        vm.deal(operator, 1 ether);
        vm.startPrank(operator);
        nft.stake{value: 0.06 ether}();
        assertTrue(!nft.isNode(operator), "not a node below NODE_STAKE");
        nft.stake{value: 0.04 ether}();
        assertTrue(nft.isNode(operator), "a node at NODE_STAKE");
        assertEq(nft.stakeOf(operator).staked, 0.1 ether, "staked");
        vm.stopPrank();
    }

    function test_UnstakeWaitsOutTheDelay() public {
        vm.prank(forger);
        nft.requestUnstake(0.04 ether);
        assertTrue(!nft.isNode(forger), "below NODE_STAKE it stops being a node at once");
        GenmintNFT.Stake memory s = nft.stakeOf(forger);
        assertEq(s.unstaking, 0.04 ether, "unstaking");
        assertEq(s.unlockAt, NOW + nft.UNSTAKE_DELAY(), "unlock");
        vm.warp(NOW + nft.UNSTAKE_DELAY() - 1);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.StakeLocked.selector, s.unlockAt, 0));
        vm.prank(forger);
        nft.withdrawStake();
        vm.warp(NOW + nft.UNSTAKE_DELAY());
        uint256 before = forger.balance;
        vm.prank(forger);
        nft.withdrawStake();
        assertEq(forger.balance - before, 0.04 ether, "paid out");
        assertEq(nft.stakeOf(forger).unstaking, 0, "nothing left unstaking");
    }

    function test_CuratedNodeStaysANodeWithoutStake() public {
        vm.deal(node, 1 ether);
        vm.startPrank(node);
        nft.stake{value: 0.1 ether}();
        nft.requestUnstake(0.1 ether);
        vm.stopPrank();
        assertTrue(nft.isNode(node), "owner-registered node stays");
    }

    function test_DeactivatedNodeCannotRejoinByStake() public {
        vm.prank(owner);
        nft.deactivateNode(forger);
        vm.prank(forger);
        nft.stake{value: 0.1 ether}();
        assertTrue(!nft.isNode(forger), "barred");
        vm.prank(owner);
        nft.registerNode(forger);
        assertTrue(nft.isNode(forger), "the owner lifts the bar");
    }

    function test_ModelBond() public {
        bytes32 model = keccak256("bonded model");
        vm.deal(stranger, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.WrongAmount.selector, 1, nft.MODEL_BOND()));
        vm.prank(stranger);
        nft.bondModel{value: 1}(model, "bonded", "stranger", "");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelTaken.selector, MODEL));
        vm.prank(stranger);
        nft.bondModel{value: 0.05 ether}(MODEL, "squat", "stranger", "");
        vm.prank(stranger);
        nft.bondModel{value: 0.05 ether}(model, "bonded", "stranger", "");
        assertTrue(nft.isModel(model), "bonded model is registered");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotBonder.selector, model, stranger));
        nft.retireModel(model);
        vm.prank(stranger);
        nft.retireModel(model);
        assertTrue(!nft.isModel(model), "retired");
        assertEq(nft.fundsOf(stranger), 0.05 ether, "bond returned to funds");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelTaken.selector, model));
        vm.prank(stranger);
        nft.bondModel{value: 0.05 ether}(model, "again", "stranger", "");
    }

    function test_OwnerTakedownForfeitsTheModelBond() public {
        bytes32 model = keccak256("false manifest");
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        nft.bondModel{value: 0.05 ether}(model, "false", "stranger", "");
        vm.prank(owner);
        nft.deactivateModel(model);
        assertEq(nft.burned(), 0.05 ether, "burned");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotBonder.selector, model, stranger));
        vm.prank(owner);
        nft.retireModel(model);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, model));
        vm.prank(stranger);
        nft.retireModel(model);
    }
}

contract DisputeTest is DisputeFixture {
    function test_ConfirmedFraudSlashesTheForgerAndMarksTheToken() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        bytes32 truth = _truth(0);
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        uint256 challengerBefore = challenger.balance;
        _open(challenger, job, truth);
        assertEq(challengerBefore - challenger.balance, nft.DISPUTE_BOND(), "bond locked");
        assertEq(nft.stakeOf(forger).openDisputes, 1, "open against the forger");
        _vote(checkers[0], tokenId, evidence, truth);
        _vote(checkers[1], tokenId, evidence, truth);
        _vote(checkers[2], tokenId, evidence, keccak256("a third opinion"));
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.WindowOpen.selector, tokenId, NOW + nft.DISPUTE_WINDOW()));
        nft.resolveDispute(tokenId, evidence);

        vm.warp(NOW + nft.DISPUTE_WINDOW());
        vm.recordLogs();
        nft.resolveDispute(tokenId, evidence);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        GenmintNFT.Dispute memory d = nft.disputeOf(tokenId);
        assertEq(uint8(d.status), uint8(GenmintNFT.DisputeStatus.Fraud), "fraud");
        assertEq(d.confirmations, 2, "confirmations");
        GenmintNFT.Stake memory s = nft.stakeOf(forger);
        assertEq(s.staked, 0, "stake slashed");
        assertTrue(s.barred, "barred");
        assertTrue(!nft.isNode(forger), "deactivated");
        assertEq(nft.fundsOf(challenger), 0.05 ether + nft.DISPUTE_BOND(), "half the stake and the bond");
        assertEq(nft.burned(), 0.05 ether, "the other half burned");

        bool update;
        bool metadataUpdate;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics[0] == GenmintNFT.Update.selector) {
                update = true;
                assertEq(logs[i].topics[1], bytes32(tokenId), "Update token");
                assertEq(logs[i].topics[2], evidence.promptHash, "Update prompt topic");
                assertEq(logs[i].topics[3], keccak256(abi.encodePacked(truth)), "Update aigcData topic");
            }
            if (logs[i].topics[0] == keccak256("MetadataUpdate(uint256)")) {
                metadataUpdate = true;
                assertEq(abi.decode(logs[i].data, (uint256)), tokenId, "MetadataUpdate token");
            }
        }
        assertTrue(update && metadataUpdate, "token marked: ERC-7007 Update and ERC-4906 MetadataUpdate");

        // No double slash: the token cannot be disputed again, and the forger stays out.
        vm.expectRevert(
            abi.encodeWithSelector(GenmintNFT.DisputeExists.selector, tokenId, GenmintNFT.DisputeStatus.Fraud)
        );
        _open(checkers[0], job, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NoOpenDispute.selector, tokenId));
        nft.resolveDispute(tokenId, evidence);
        vm.prank(forger);
        nft.stake{value: 0.1 ether}();
        assertTrue(!nft.isNode(forger), "a slashed node does not rejoin by stake");
    }

    function test_UnstakingCannotEscapeAPendingDispute() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        vm.prank(forger);
        nft.requestUnstake(0.1 ether);
        bytes32 truth = _truth(0);
        _open(challenger, job, truth);
        vm.warp(NOW + nft.UNSTAKE_DELAY());
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.StakeLocked.selector, NOW + nft.UNSTAKE_DELAY(), 1));
        vm.prank(forger);
        nft.withdrawStake();
        // Late votes are refused; the window is what it is.
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.WindowClosed.selector, tokenId, NOW + nft.DISPUTE_WINDOW()));
        _vote(checkers[0], tokenId, evidence, truth);
    }

    function test_SlashTakesUnstakingWei() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        vm.prank(forger);
        nft.requestUnstake(0.1 ether);
        bytes32 truth = _truth(0);
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        _open(challenger, job, truth);
        _vote(checkers[0], tokenId, evidence, truth);
        _vote(checkers[1], tokenId, evidence, truth);
        vm.warp(NOW + nft.UNSTAKE_DELAY());
        nft.resolveDispute(tokenId, evidence);
        assertEq(nft.stakeOf(forger).unstaking, 0, "unstaking slashed");
        assertEq(nft.burned(), 0.05 ether, "burned");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.StakeLocked.selector, 0, 0));
        vm.prank(forger);
        nft.withdrawStake();
    }

    function test_RejectedChallengeForfeitsTheBond() public {
        GenmintNFT.Job memory job = _job(0);
        uint256 tokenId = nft.mint(job);
        bytes32 lie = keccak256("a digest nobody re-derives");
        GenmintNFT.Evidence memory evidence = _evidence(job, lie);
        _open(challenger, job, lie);
        _vote(checkers[0], tokenId, evidence, job.output.pixelDigest);
        _vote(checkers[1], tokenId, evidence, job.output.pixelDigest);
        _vote(checkers[2], tokenId, evidence, lie);
        vm.warp(NOW + nft.DISPUTE_WINDOW());
        nft.resolveDispute(tokenId, evidence);
        assertEq(uint8(nft.disputeOf(tokenId).status), uint8(GenmintNFT.DisputeStatus.Rejected), "rejected");
        assertEq(nft.fundsOf(node), FEE + nft.DISPUTE_BOND() / 2, "half the bond to the node");
        assertEq(nft.burned(), nft.DISPUTE_BOND() / 2, "half burned");
        assertEq(nft.fundsOf(challenger), 0, "challenger loses its bond");
        assertTrue(nft.isNode(node), "the node stays");
    }

    function test_NoQuorumReturnsTheBond() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        bytes32 truth = _truth(0);
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        _open(challenger, job, truth);
        _vote(checkers[0], tokenId, evidence, truth);
        vm.warp(NOW + nft.DISPUTE_WINDOW());
        nft.resolveDispute(tokenId, evidence);
        assertEq(uint8(nft.disputeOf(tokenId).status), uint8(GenmintNFT.DisputeStatus.None), "undecided");
        assertEq(nft.fundsOf(challenger), nft.DISPUTE_BOND(), "bond returned");
        assertEq(nft.stakeOf(forger).staked, 0.1 ether, "no slash without a quorum");
        assertEq(nft.stakeOf(forger).openDisputes, 0, "none open");
        // It may be disputed again, and the earlier voters vote afresh.
        _open(challenger, job, truth);
        _vote(checkers[0], tokenId, evidence, truth);
    }

    function test_TieIsNoQuorum() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        bytes32 truth = _truth(0);
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        _open(challenger, job, truth);
        vm.prank(owner);
        nft.registerNode(stranger);
        _vote(checkers[0], tokenId, evidence, truth);
        _vote(checkers[1], tokenId, evidence, truth);
        _vote(checkers[2], tokenId, evidence, job.output.pixelDigest);
        _vote(stranger, tokenId, evidence, job.output.pixelDigest);
        vm.warp(NOW + nft.DISPUTE_WINDOW());
        nft.resolveDispute(tokenId, evidence);
        assertEq(nft.stakeOf(forger).staked, 0.1 ether, "a tie slashes nobody");
        assertEq(nft.fundsOf(challenger), nft.DISPUTE_BOND(), "bond returned");
    }

    function test_WhoMayVote() public {
        (GenmintNFT.Job memory job, uint256 tokenId) = _mintForged(0);
        bytes32 truth = _truth(0);
        GenmintNFT.Evidence memory evidence = _evidence(job, truth);
        _open(challenger, job, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotAVoter.selector, forger));
        _vote(forger, tokenId, evidence, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotAVoter.selector, challenger));
        _vote(challenger, tokenId, evidence, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotAVoter.selector, stranger));
        _vote(stranger, tokenId, evidence, truth);
        _vote(checkers[0], tokenId, evidence, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AlreadyVoted.selector, tokenId, checkers[0]));
        _vote(checkers[0], tokenId, evidence, truth);
        GenmintNFT.Evidence memory other = _evidence(job, keccak256("other"));
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.EvidenceMismatch.selector, tokenId));
        _vote(checkers[1], tokenId, other, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NoOpenDispute.selector, tokenId + 1));
        _vote(checkers[1], tokenId + 1, evidence, truth);
    }

    function test_OpeningChecksTheEvidence() public {
        (GenmintNFT.Job memory job,) = _mintForged(0);
        bytes32 truth = _truth(0);
        uint256 bond = nft.DISPUTE_BOND();
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.WrongAmount.selector, 1, bond));
        vm.prank(challenger);
        nft.openDispute{value: 1}(job.request, job.output.pixelDigest, job.output.imageCid, job.nodeSignature, truth);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotAMismatch.selector, job.output.pixelDigest));
        _open(challenger, job, job.output.pixelDigest);
        // A challenger cannot claim the node attested a digest it did not sign.
        bytes32 attested = job.output.pixelDigest;
        job.output.pixelDigest = keccak256("misquoted");
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        _open(challenger, job, truth);
        job.output.pixelDigest = attested;
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NotAVoter.selector, forger));
        _open(forger, job, truth);
        GenmintNFT.Job memory unminted = _job(7);
        vm.expectRevert(
            abi.encodeWithSignature("ERC721NonexistentToken(uint256)", uint256(nft.hashRequest(unminted.request)))
        );
        _open(challenger, unminted, truth);
    }
}
