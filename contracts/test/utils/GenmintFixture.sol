// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "../Vm.sol";
import {GenmintNFT} from "../../src/GenmintNFT.sol";
import {RawCid} from "../../src/RawCid.sol";

/// @notice A deployed GenmintNFT with a registered node and model, a funded creator, and helpers that
/// build fully signed jobs; shared by the unit, fuzz, invariant and gas tests.
abstract contract GenmintFixture is Test {
    // Anvil's default accounts 0 (owner), 1 (node operator) and 2 (creator).
    uint256 internal constant OWNER_KEY = 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    uint256 internal constant NODE_KEY = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
    uint256 internal constant CREATOR_KEY = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
    uint256 internal constant STRANGER_KEY = 0xa11ce;

    // Test digests use keccak256: a sha256 constant is a precompile call at each use, and that call
    // would consume a pending prank or revert expectation.
    bytes32 internal constant MODEL = keccak256("genmint test model manifest");
    uint64 internal constant NOW = 1_767_225_600;
    uint64 internal constant BLOCK = 1234;
    uint96 internal constant ROYALTY_BPS = 500;
    uint256 internal constant FEE = 0.001 ether;
    uint256 internal constant DEPOSIT = 1 ether;
    string internal constant IMAGE_CID = "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta";

    GenmintNFT internal nft;
    address internal owner;
    address internal node;
    address internal creator;
    address internal stranger;

    function setUp() public virtual {
        owner = vm.addr(OWNER_KEY);
        node = vm.addr(NODE_KEY);
        creator = vm.addr(CREATOR_KEY);
        stranger = vm.addr(STRANGER_KEY);
        vm.warp(NOW);
        vm.roll(BLOCK);

        nft = new GenmintNFT(owner, ROYALTY_BPS);
        vm.startPrank(owner);
        nft.registerNode(node);
        nft.registerModel(MODEL, "tiny-sd", "genmint", "https://genmint.invalid/licence");
        vm.stopPrank();
        vm.deal(creator, 10 ether);
        vm.prank(creator);
        nft.deposit{value: DEPOSIT}();
    }

    function _request(uint256 nonce) internal view returns (GenmintNFT.GenerationRequest memory) {
        return GenmintNFT.GenerationRequest({
            creator: creator,
            modelHash: MODEL,
            prompt: "a lighthouse on a cliff at sunset, oil painting",
            negativePrompt: "",
            seed: 42,
            width: 512,
            height: 512,
            steps: 20,
            guidance: 750,
            scheduler: "ddim",
            fee: FEE,
            nonce: nonce,
            deadline: NOW + 3600
        });
    }

    function _output(uint256 salt) internal view returns (GenmintNFT.Output memory) {
        return GenmintNFT.Output({
            pixelDigest: keccak256(abi.encode("pixels", salt)),
            metadataDigest: keccak256(abi.encode("metadata", salt)),
            node: node,
            imageCid: IMAGE_CID
        });
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

    /// @dev The attestation `output` forms with `request`, as the node signs it.
    function _attestation(GenmintNFT.GenerationRequest memory request, GenmintNFT.Output memory output)
        internal
        view
        returns (GenmintNFT.Attestation memory)
    {
        return GenmintNFT.Attestation({
            requestDigest: nft.hashRequest(request),
            modelHash: request.modelHash,
            pixelDigest: output.pixelDigest,
            imageCid: output.imageCid,
            metadataCid: RawCid.fromSha256(output.metadataDigest),
            node: output.node
        });
    }

    /// @dev A job for `request` and `output`, signed by the creator key and the node key given.
    function _job(
        GenmintNFT.GenerationRequest memory request,
        GenmintNFT.Output memory output,
        uint256 creatorKey,
        uint256 nodeKey
    ) internal view returns (GenmintNFT.Job memory) {
        return GenmintNFT.Job({
            request: request,
            creatorSignature: _signCompactBytes(creatorKey, nft.hashRequest(request)),
            output: output,
            nodeSignature: _signCompact(nodeKey, nft.hashAttestation(_attestation(request, output)))
        });
    }

    /// @dev A valid job for request `nonce`, signed by the creator and the node.
    function _job(uint256 nonce) internal view returns (GenmintNFT.Job memory) {
        return _job(_request(nonce), _output(nonce), CREATOR_KEY, NODE_KEY);
    }

    // ---------------------------------------------------------------- ERC-7007 encodings

    function _prompt(GenmintNFT.Job memory job) internal pure returns (bytes memory) {
        return abi.encode(job.request);
    }

    function _aigcData(GenmintNFT.Job memory job) internal pure returns (bytes memory) {
        return abi.encodePacked(job.output.pixelDigest, job.output.imageCid);
    }

    function _proof(GenmintNFT.Job memory job) internal pure returns (bytes memory) {
        return abi.encodePacked(job.nodeSignature.r, job.nodeSignature.vs, job.creatorSignature);
    }

    /// @dev The EIP-712 struct hash of a request in plain Solidity, to check the contract's own.
    function _referenceStructHash(GenmintNFT.GenerationRequest memory r) internal pure returns (bytes32) {
        bytes32 typeHash = keccak256(
            "GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,uint64 seed,"
            "uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,uint256 fee,uint256 nonce,"
            "uint64 deadline)"
        );
        return keccak256(
            bytes.concat(
                abi.encode(
                    typeHash,
                    r.creator,
                    r.modelHash,
                    keccak256(bytes(r.prompt)),
                    keccak256(bytes(r.negativePrompt)),
                    r.seed,
                    r.width
                ),
                abi.encode(r.height, r.steps, r.guidance, keccak256(bytes(r.scheduler)), r.fee, r.nonce, r.deadline)
            )
        );
    }
}
