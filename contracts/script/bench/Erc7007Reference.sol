// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";

/// @notice Benchmark baseline: the design of the ERC-7007 reference implementation (zkML flavour with
/// the Enumerable extension), written out for this benchmark. A mint safe-mints `keccak256(prompt)`,
/// verifies the proof through an external verifier, emits `AigcData`, stores a JSON token URI that
/// embeds the prompt and the AIGC data, and stores the prompt both ways (token to prompt, prompt to
/// token).
contract Erc7007Reference is ERC721URIStorage {
    event AigcData(uint256 indexed tokenId, bytes indexed prompt, bytes aigcData, bytes proof);

    ProofVerifier public immutable verifier;
    mapping(uint256 tokenId => string prompt) public prompt;
    mapping(bytes prompt => uint256 tokenId) public tokenId;

    constructor(ProofVerifier verifier_) ERC721("erc7007", "AIGC") {
        verifier = verifier_;
    }

    function mint(
        address to,
        bytes calldata prompt_,
        bytes calldata aigcData,
        string calldata uri,
        bytes calldata proof
    ) external returns (uint256 id) {
        id = uint256(keccak256(prompt_));
        _safeMint(to, id);
        require(verifier.verifyProof(proof, abi.encodePacked(prompt_, aigcData)), "invalid proof");
        emit AigcData(id, prompt_, aigcData, proof);
        _setTokenURI(
            id, string.concat("{", uri, ', "prompt": "', string(prompt_), '", "aigc_data": "', string(aigcData), '"}')
        );
        prompt[id] = string(prompt_);
        tokenId[prompt_] = id;
    }
}

/// @notice Accepts every proof, so the benchmark measures the token contract alone.
contract ProofVerifier {
    function verifyProof(bytes calldata, bytes calldata) external pure returns (bool) {
        return true;
    }
}
