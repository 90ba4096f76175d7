// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC721Utils} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Utils.sol";

/// @title PackedERC721
/// @notice ERC-721 with ERC-721 metadata whose storage words carry the inheriting contract's data, so
/// that a mint writes two words instead of four: each token's owner word keeps 96 bits of token data
/// next to the owner address, and each account's balance word keeps 192 bits of account data next to
/// the token count.
/// @dev Behaviour and custom errors follow OpenZeppelin's ERC721 (5.x): `_mint` does not call the
/// receiver, `safeTransferFrom` does (after every state change), approvals clear on transfer.
/// Layout: token word = owner (bits 0-159) | token data (160-255);
///         account word = token count (bits 0-63) | account data (64-255).
abstract contract PackedERC721 is IERC721, IERC721Metadata, IERC721Errors {
    uint256 private constant _OWNER_MASK = (1 << 160) - 1;
    uint256 private constant _COUNT_MASK = (1 << 64) - 1;

    mapping(uint256 tokenId => uint256 word) private _tokenWords;
    mapping(address account => uint256 word) private _accountWords;
    mapping(uint256 tokenId => address approved) private _tokenApprovals;
    mapping(address owner => mapping(address operator => bool approved)) private _operatorApprovals;

    // ---------------------------------------------------------------- ERC-165

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view virtual returns (bool) {
        return interfaceId == type(IERC165).interfaceId || interfaceId == type(IERC721).interfaceId
            || interfaceId == type(IERC721Metadata).interfaceId;
    }

    // ---------------------------------------------------------------- ERC-721 views

    /// @inheritdoc IERC721
    function balanceOf(address owner) public view virtual returns (uint256) {
        if (owner == address(0)) revert ERC721InvalidOwner(address(0));
        return _accountWords[owner] & _COUNT_MASK;
    }

    /// @inheritdoc IERC721
    function ownerOf(uint256 tokenId) public view virtual returns (address) {
        return _requireOwned(tokenId);
    }

    /// @inheritdoc IERC721
    function getApproved(uint256 tokenId) public view virtual returns (address) {
        _requireOwned(tokenId);
        return _tokenApprovals[tokenId];
    }

    /// @inheritdoc IERC721
    function isApprovedForAll(address owner, address operator) public view virtual returns (bool) {
        return _operatorApprovals[owner][operator];
    }

    // ---------------------------------------------------------------- ERC-721 actions

    /// @inheritdoc IERC721
    function approve(address to, uint256 tokenId) public virtual {
        address owner = _requireOwned(tokenId);
        if (msg.sender != owner && !_operatorApprovals[owner][msg.sender]) revert ERC721InvalidApprover(msg.sender);
        _tokenApprovals[tokenId] = to;
        emit Approval(owner, to, tokenId);
    }

    /// @inheritdoc IERC721
    function setApprovalForAll(address operator, bool approved) public virtual {
        if (operator == address(0)) revert ERC721InvalidOperator(operator);
        _operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    /// @inheritdoc IERC721
    function transferFrom(address from, address to, uint256 tokenId) public virtual {
        if (to == address(0)) revert ERC721InvalidReceiver(address(0));
        uint256 word = _tokenWords[tokenId];
        // forge-lint: disable-next-line(unsafe-typecast) the owner is the low 160 bits
        address owner = address(uint160(word));
        if (owner == address(0)) revert ERC721NonexistentToken(tokenId);
        if (owner != from) revert ERC721IncorrectOwner(from, tokenId, owner);
        address approved = _tokenApprovals[tokenId];
        if (msg.sender != owner && msg.sender != approved && !_operatorApprovals[owner][msg.sender]) {
            revert ERC721InsufficientApproval(msg.sender, tokenId);
        }
        if (approved != address(0)) delete _tokenApprovals[tokenId];
        unchecked {
            // `from` owns this token, so its count is at least one; a count cannot reach 2^64.
            _accountWords[from] -= 1;
            _accountWords[to] += 1;
        }
        _tokenWords[tokenId] = (word & ~_OWNER_MASK) | uint160(to);
        emit Transfer(from, to, tokenId);
    }

    /// @inheritdoc IERC721
    function safeTransferFrom(address from, address to, uint256 tokenId) public virtual {
        safeTransferFrom(from, to, tokenId, "");
    }

    /// @inheritdoc IERC721
    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public virtual {
        transferFrom(from, to, tokenId);
        ERC721Utils.checkOnERC721Received(msg.sender, from, to, tokenId, data);
    }

    // ---------------------------------------------------------------- for the inheriting contract

    /// @dev Mints `tokenId` to `to` with `tokenData` in the token word, and sets `to`'s account data to
    /// `toData` (computed by the caller from `_accountData(to)`) in the same write; no receiver
    /// callback. Reverts with `ERC721InvalidReceiver` for the zero address. The caller must have
    /// checked that `tokenId` does not exist (`_ownerOf`): the mint path reads that word once.
    function _mint(address to, uint256 tokenId, uint96 tokenData, uint192 toData) internal {
        if (to == address(0)) revert ERC721InvalidReceiver(address(0));
        _tokenWords[tokenId] = (uint256(tokenData) << 160) | uint160(to);
        unchecked {
            // One token per mint: the count cannot reach 2^64.
            _accountWords[to] = (uint256(toData) << 64) | ((_accountWords[to] & _COUNT_MASK) + 1);
        }
        emit Transfer(address(0), to, tokenId);
    }

    /// @dev The owner of `tokenId`, or the zero address if it was never minted.
    function _ownerOf(uint256 tokenId) internal view returns (address) {
        return address(uint160(_tokenWords[tokenId]));
    }

    /// @dev The owner of `tokenId`; reverts with `ERC721NonexistentToken` if it was never minted.
    function _requireOwned(uint256 tokenId) internal view returns (address owner) {
        owner = address(uint160(_tokenWords[tokenId]));
        if (owner == address(0)) revert ERC721NonexistentToken(tokenId);
    }

    /// @dev The 96 bits of data stored with `tokenId` (zero if it was never minted).
    function _tokenData(uint256 tokenId) internal view returns (uint96) {
        return uint96(_tokenWords[tokenId] >> 160);
    }

    /// @dev The 192 bits of data stored with `account`.
    function _accountData(address account) internal view returns (uint192) {
        return uint192(_accountWords[account] >> 64);
    }

    /// @dev Replaces the 192 bits of data stored with `account`; its token count is kept.
    function _setAccountData(address account, uint192 data) internal {
        _accountWords[account] = (uint256(data) << 64) | (_accountWords[account] & _COUNT_MASK);
    }
}
