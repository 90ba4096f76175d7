// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {GenmintFixture} from "./utils/GenmintFixture.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";

/// @notice Accepts tokens and remembers the last one.
contract Receiver is IERC721Receiver {
    address public lastOperator;
    address public lastFrom;
    uint256 public lastTokenId;
    bytes public lastData;

    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4)
    {
        (lastOperator, lastFrom, lastTokenId, lastData) = (operator, from, tokenId, data);
        return IERC721Receiver.onERC721Received.selector;
    }
}

/// @notice A contract that cannot take tokens.
contract NotAReceiver {}

/// @notice ERC-721 behaviour of GenmintNFT's packed storage: balances, transfers, approvals, safe
/// transfers, and the token and account data kept through them.
contract PackedERC721Test is GenmintFixture {
    uint256 internal tokenId;

    function setUp() public override {
        super.setUp();
        tokenId = nft.mint(_job(1));
    }

    function test_TransferMovesTheTokenAndKeepsItsData() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IERC721.Transfer(creator, stranger, tokenId);
        vm.prank(creator);
        nft.transferFrom(creator, stranger, tokenId);
        assertEq(nft.ownerOf(tokenId), stranger, "owner");
        assertEq(nft.balanceOf(creator), 0, "from balance");
        assertEq(nft.balanceOf(stranger), 1, "to balance");
        assertEq(nft.provenance(tokenId).creator, creator, "token data kept");
        assertEq(nft.provenance(tokenId).mintBlock, BLOCK, "mint block kept");
        assertEq(nft.fundsOf(creator), DEPOSIT - FEE, "account data kept when the balance drops");
    }

    function test_ApprovedAccountsMayTransfer() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IERC721.Approval(creator, stranger, tokenId);
        vm.prank(creator);
        nft.approve(stranger, tokenId);
        assertEq(nft.getApproved(tokenId), stranger, "approved");
        vm.prank(stranger);
        nft.transferFrom(creator, node, tokenId);
        assertEq(nft.getApproved(tokenId), address(0), "approval cleared by the transfer");

        vm.prank(node);
        nft.setApprovalForAll(stranger, true);
        assertTrue(nft.isApprovedForAll(node, stranger), "operator");
        vm.prank(stranger);
        nft.transferFrom(node, creator, tokenId);
        assertEq(nft.ownerOf(tokenId), creator, "moved by the operator");

        // An operator may approve others for the owner's tokens.
        vm.prank(creator);
        nft.setApprovalForAll(node, true);
        vm.prank(node);
        nft.approve(stranger, tokenId);
        assertEq(nft.getApproved(tokenId), stranger, "approved by the operator");
    }

    function test_SafeTransferCallsTheReceiver() public {
        Receiver receiver = new Receiver();
        vm.prank(creator);
        nft.safeTransferFrom(creator, address(receiver), tokenId, "hello");
        assertEq(nft.ownerOf(tokenId), address(receiver), "owner");
        assertEq(receiver.lastOperator(), creator, "operator");
        assertEq(receiver.lastFrom(), creator, "from");
        assertEq(receiver.lastTokenId(), tokenId, "token");
        assertEq(receiver.lastData(), bytes("hello"), "data");
        vm.prank(address(receiver));
        nft.safeTransferFrom(address(receiver), creator, tokenId);
        assertEq(nft.ownerOf(tokenId), creator, "an EOA needs no callback");
    }

    function test_RevertWhen_TransferIsNotAllowed() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InsufficientApproval.selector, stranger, tokenId));
        vm.prank(stranger);
        nft.transferFrom(creator, stranger, tokenId);

        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721IncorrectOwner.selector, stranger, tokenId, creator));
        vm.prank(creator);
        nft.transferFrom(stranger, creator, tokenId);

        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(0)));
        vm.prank(creator);
        nft.transferFrom(creator, address(0), tokenId);

        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 5));
        nft.transferFrom(creator, stranger, 5);

        NotAReceiver sink = new NotAReceiver();
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(sink)));
        vm.prank(creator);
        nft.safeTransferFrom(creator, address(sink), tokenId);
        assertEq(nft.ownerOf(tokenId), creator, "nothing moved");
    }

    function test_RevertWhen_ApprovalIsNotAllowed() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidApprover.selector, stranger));
        vm.prank(stranger);
        nft.approve(stranger, tokenId);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidOperator.selector, address(0)));
        vm.prank(creator);
        nft.setApprovalForAll(address(0), true);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 5));
        nft.getApproved(5);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidOwner.selector, address(0)));
        nft.balanceOf(address(0));
    }
}
