// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {RawCid} from "../src/RawCid.sol";
import {PlainERC721} from "./bench/PlainERC721.sol";
import {Erc7007Reference, ProofVerifier} from "./bench/Erc7007Reference.sol";

/// @notice Sends the gas benchmark's transactions to a running chain (anvil's default accounts):
/// two mints each of a plain ERC-721, of the ERC-7007 reference design (100-character prompt) and of
/// GenmintNFT (a new holder, then an existing one; fees settled), then one GenmintNFT batch of 20.
/// scripts/gas-benchmark.sh runs it on a fresh anvil and reads the receipts.
contract GasBenchmark {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant OWNER_KEY = 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    uint256 internal constant NODE_KEY = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
    uint256 internal constant CREATOR_KEY = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
    uint256 internal constant BATCH = 20;
    uint256 internal constant FEE = 0.001 ether;
    /// 100 characters.
    bytes internal constant PROMPT_100 =
        "a lighthouse on a cliff at sunset, oil painting, dramatic sky, crashing waves, warm light, detailed!";

    GenmintNFT internal nft;

    function run() external {
        address creator = vm.addr(CREATOR_KEY);
        address node = vm.addr(NODE_KEY);
        require(PROMPT_100.length == 100, "prompt length");

        vm.startBroadcast(OWNER_KEY);
        PlainERC721 plain = new PlainERC721();
        Erc7007Reference erc7007 = new Erc7007Reference(new ProofVerifier());
        nft = new GenmintNFT(vm.addr(OWNER_KEY), 500);
        bytes32 model = sha256("genmint benchmark model");
        nft.registerModel(model, "bench", "genmint", "");
        nft.registerNode(node);
        vm.stopBroadcast();

        vm.startBroadcast(CREATOR_KEY);
        nft.deposit{value: 1 ether}();
        vm.stopBroadcast();

        vm.startBroadcast(NODE_KEY);
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

    function _job(bytes32 model, address creator, address node, uint256 nonce)
        internal
        view
        returns (GenmintNFT.Job memory job)
    {
        job.request = GenmintNFT.GenerationRequest({
            creator: creator,
            modelHash: model,
            prompt: string(PROMPT_100),
            negativePrompt: "blurry",
            // forge-lint: disable-next-line(unsafe-typecast) nonces here are below 100
            seed: 42 + uint64(nonce),
            width: 512,
            height: 512,
            steps: 20,
            guidance: 750,
            scheduler: "ddim",
            fee: FEE,
            nonce: nonce,
            deadline: uint64(block.timestamp + 3600)
        });
        job.output = GenmintNFT.Output({
            pixelDigest: sha256(abi.encode("pixels", nonce)),
            metadataDigest: sha256(abi.encode("metadata", nonce)),
            node: node,
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta"
        });
        bytes32 digest = nft.hashRequest(job.request);
        job.creatorSignature = _signCompactBytes(CREATOR_KEY, digest);
        GenmintNFT.Attestation memory attestation = GenmintNFT.Attestation({
            requestDigest: digest,
            modelHash: model,
            pixelDigest: job.output.pixelDigest,
            imageCid: job.output.imageCid,
            metadataCid: RawCid.fromSha256(job.output.metadataDigest),
            node: node
        });
        job.nodeSignature = _signCompact(NODE_KEY, nft.hashAttestation(attestation));
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev An ERC-2098 compact signature as bytes (r, vs).
    function _signCompactBytes(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        GenmintNFT.CompactSignature memory signature = _signCompact(key, digest);
        return abi.encodePacked(signature.r, signature.vs);
    }

    /// @dev ERC-2098: the y-parity (v - 27) in the top bit of s.
    function _signCompact(uint256 key, bytes32 digest) internal pure returns (GenmintNFT.CompactSignature memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return GenmintNFT.CompactSignature({r: r, vs: bytes32(uint256(s) | (uint256(v - 27) << 255))});
    }
}
