// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";

/// @title ERC-7007: Verifiable AI-Generated Content Token (final), ERC-165 id 0x702c55a6.
interface IERC7007 is IERC165, IERC721 {
    /// @notice AI-generated content data was added to `tokenId`.
    event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes aigcData, bytes proof);

    /// @notice Adds AIGC data to `tokenId` given `prompt`, `aigcData` and `proof`.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof) external;

    /// @notice Whether `proof` shows that `aigcData` was generated from `prompt`.
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
        view
        returns (bool success);
}
