// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "../test/utils/Signing.sol";
import {PlainERC721} from "./bench/PlainERC721.sol";
import {Erc7007Reference, ProofVerifier} from "./bench/Erc7007Reference.sol";

/// @notice Sends the gas benchmark's transactions to a running chain (anvil's default accounts):
/// two mints each of a plain ERC-721, of the ERC-7007 reference design (100-character prompt) and of
/// GenmintNFT (a new holder, then an existing one; fees settled), then one GenmintNFT batch of 20.
/// scripts/gas-benchmark.sh runs it on a fresh anvil and reads the receipts.
contract GasBenchmark {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant BATCH = 20;
    uint256 internal constant FEE = 0.001 ether;
    /// 100 characters.
    bytes internal constant PROMPT_100 =
        "a lighthouse on a cliff at sunset, oil painting, dramatic sky, crashing waves, warm light, detailed!";

    GenmintNFT internal nft;

    function run() external {
        address creator = vm.addr(Signing.CREATOR_KEY);
        address node = vm.addr(Signing.NODE_KEY);
        require(PROMPT_100.length == 100, "prompt length");

        vm.startBroadcast(Signing.OWNER_KEY);
        PlainERC721 plain = new PlainERC721();
        Erc7007Reference erc7007 = new Erc7007Reference(new ProofVerifier());
        nft = new GenmintNFT(vm.addr(Signing.OWNER_KEY), 500);
        bytes32 model = sha256("genmint benchmark model");
        nft.registerModel(model, "bench", "genmint", "");
        nft.registerNode(node);
        vm.stopBroadcast();

        vm.startBroadcast(Signing.CREATOR_KEY);
        nft.deposit{value: 1 ether}();
        vm.stopBroadcast();

        vm.startBroadcast(Signing.NODE_KEY);
        plain.mint(creator, 1);
        plain.mint(creator, 2);
        bytes memory aigcData =
            abi.encode(sha256("pixels"), "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta");
        bytes memory proof = abi.encodePacked(bytes32(uint256(1)), bytes32(uint256(2)), uint8(27));
        erc7007.mint(creator, bytes.concat(PROMPT_100, "1"), aigcData, '"name": "bench"', proof);
        erc7007.mint(creator, bytes.concat(PROMPT_100, "2"), aigcData, '"name": "bench"', proof);
        nft.mint(_job(model, creator, node, 0));
        nft.mint(_job(model, creator, node, 1));
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](BATCH);
        for (uint256 i = 0; i < BATCH; i++) {
            jobs[i] = _job(model, creator, node, 2 + i);
        }
        nft.mintBatch(jobs);
        vm.stopBroadcast();
    }

    /// @dev The tests' standard request with the 100-character prompt, a negative prompt and a seed per
    /// nonce, and its output, signed by the creator and the node.
    function _job(bytes32 model, address creator, address node, uint256 nonce)
        internal
        view
        returns (GenmintNFT.Job memory)
    {
        GenmintNFT.GenerationRequest memory request =
            Signing.defaultRequest(creator, model, FEE, nonce, uint64(block.timestamp + 3600));
        request.prompt = string(PROMPT_100);
        request.negativePrompt = "blurry";
        // forge-lint: disable-next-line(unsafe-typecast) nonces here are below 100
        request.seed += uint64(nonce);
        GenmintNFT.Output memory output = GenmintNFT.Output({
            pixelDigest: sha256(abi.encode("pixels", nonce)),
            metadataDigest: sha256(abi.encode("metadata", nonce)),
            node: node,
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta"
        });
        return Signing.signedJob(nft, request, output, Signing.CREATOR_KEY, Signing.NODE_KEY);
    }
}
