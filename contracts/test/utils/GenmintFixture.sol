// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "../Vm.sol";
import {GenmintNFT} from "../../src/GenmintNFT.sol";
import {Signing} from "./Signing.sol";

/// @notice A deployed GenmintNFT with a registered node and model, a funded creator, and helpers that
/// build fully signed jobs; shared by the unit, fuzz, invariant and gas tests.
abstract contract GenmintFixture is Test {
    uint256 internal constant OWNER_KEY = Signing.OWNER_KEY;
    uint256 internal constant NODE_KEY = Signing.NODE_KEY;
    uint256 internal constant CREATOR_KEY = Signing.CREATOR_KEY;
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

    /// @dev The standard request, by the creator for the test model, due an hour from now.
    function _request(uint256 nonce) internal view returns (GenmintNFT.GenerationRequest memory) {
        return Signing.defaultRequest(creator, MODEL, FEE, nonce, NOW + 3600);
    }

    function _output(uint256 salt) internal view returns (GenmintNFT.Output memory) {
        return GenmintNFT.Output({
            pixelDigest: keccak256(abi.encode("pixels", salt)),
            metadataDigest: keccak256(abi.encode("metadata", salt)),
            node: node,
            imageCid: IMAGE_CID
        });
    }

    /// @dev A job for `request` and `output`, signed by the creator key and the node key given.
    function _job(
        GenmintNFT.GenerationRequest memory request,
        GenmintNFT.Output memory output,
        uint256 creatorKey,
        uint256 nodeKey
    ) internal view returns (GenmintNFT.Job memory) {
        return Signing.signedJob(nft, request, output, creatorKey, nodeKey);
    }

    /// @dev A valid job for request `nonce`, signed by the creator and the node.
    function _job(uint256 nonce) internal view returns (GenmintNFT.Job memory) {
        return Signing.signedJob(nft, _request(nonce), _output(nonce), CREATOR_KEY, NODE_KEY);
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
        return keccak256(
            bytes.concat(
                abi.encode(
                    keccak256(bytes(Signing.REQUEST_TYPE)),
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
