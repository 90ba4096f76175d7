// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice A contract wallet that accepts exactly one digest, to exercise ERC-1271 creators.
contract DigestWallet is IERC1271 {
    bytes32 public approved;

    function approve(bytes32 digest) external {
        approved = digest;
    }

    function isValidSignature(bytes32 digest, bytes calldata) external view returns (bytes4) {
        return digest == approved ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }
}

/// @notice Mint flow, provenance and registries of GenmintNFT, including every rejection.
contract GenmintNFTTest is Test {
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

    GenmintNFT internal nft;
    address internal owner;
    address internal node;
    address internal creator;
    address internal stranger;

    function setUp() public {
        owner = vm.addr(OWNER_KEY);
        node = vm.addr(NODE_KEY);
        creator = vm.addr(CREATOR_KEY);
        stranger = vm.addr(STRANGER_KEY);
        vm.warp(NOW);
        vm.roll(BLOCK);

        nft = new GenmintNFT(owner);
        vm.startPrank(owner);
        nft.registerNode(node);
        nft.registerModel(MODEL, "tiny-sd", "genmint");
        vm.stopPrank();
    }

    // ---------------------------------------------------------------- fixtures

    function _request() internal view returns (GenmintNFT.GenerationRequest memory) {
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
            fee: 0,
            nonce: 1,
            deadline: NOW + 3600
        });
    }

    function _attestation(bytes32 requestDigest) internal view returns (GenmintNFT.Attestation memory) {
        return GenmintNFT.Attestation({
            requestDigest: requestDigest,
            modelHash: MODEL,
            pixelDigest: keccak256("pixels"),
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta",
            metadataCid: "bafkreibaiijlxlod6bnuttbiipd3askmor5rrg2vtxb6zvgzd4kuqdiaci",
            node: node
        });
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev A complete, valid submission for `request`, signed by the creator and the node.
    function _signed(GenmintNFT.GenerationRequest memory request)
        internal
        view
        returns (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig)
    {
        bytes32 digest = nft.hashRequest(request);
        creatorSig = _sign(CREATOR_KEY, digest);
        attestation = _attestation(digest);
        nodeSig = _sign(NODE_KEY, nft.hashAttestation(attestation));
    }

    // ---------------------------------------------------------------- happy path

    function test_MintRecordsProvenance() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        uint256 expectedId = uint256(nft.hashRequest(request));

        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.Minted(
            expectedId,
            creator,
            node,
            MODEL,
            attestation.pixelDigest,
            attestation.imageCid,
            attestation.metadataCid,
            creatorSig,
            nodeSig
        );
        vm.prank(stranger); // anyone may submit
        uint256 tokenId = nft.mint(request, creatorSig, attestation, nodeSig);

        assertEq(tokenId, expectedId, "token id is the request digest");
        assertEq(nft.ownerOf(tokenId), creator, "owner");
        assertEq(nft.balanceOf(creator), 1, "creator balance");
        assertEq(nft.tokenURI(tokenId), string.concat("ipfs://", attestation.metadataCid), "tokenURI");

        GenmintNFT.Provenance memory record = nft.provenance(tokenId);
        assertEq(record.creator, creator, "provenance.creator");
        assertEq(record.node, node, "provenance.node");
        assertEq(record.modelHash, MODEL, "provenance.modelHash");
        assertEq(record.seed, 42, "provenance.seed");
        assertEq(record.mintedAt, NOW, "provenance.mintedAt");
        assertEq(record.mintBlock, BLOCK, "provenance.mintBlock");
        assertEq(record.pixelDigest, keccak256("pixels"), "provenance.pixelDigest");
        assertEq(record.promptHash, keccak256(bytes(request.prompt)), "provenance.promptHash");
        assertEq(record.imageCid, attestation.imageCid, "provenance.imageCid");
        assertEq(record.metadataCid, attestation.metadataCid, "provenance.metadataCid");
    }

    function test_MintAcceptsDeadlineEqualToNow() public {
        GenmintNFT.GenerationRequest memory request = _request();
        request.deadline = NOW;
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        uint256 tokenId = nft.mint(request, creatorSig, attestation, nodeSig);
        assertEq(nft.ownerOf(tokenId), creator, "owner");
    }

    function test_MintAcceptsContractWalletCreator() public {
        DigestWallet wallet = new DigestWallet();
        GenmintNFT.GenerationRequest memory request = _request();
        request.creator = address(wallet);
        bytes32 digest = nft.hashRequest(request);
        wallet.approve(digest);
        GenmintNFT.Attestation memory attestation = _attestation(digest);
        bytes memory nodeSig = _sign(NODE_KEY, nft.hashAttestation(attestation));

        uint256 tokenId = nft.mint(request, "", attestation, nodeSig);
        assertEq(nft.ownerOf(tokenId), address(wallet), "contract wallet owns the token");
        assertEq(nft.provenance(tokenId).creator, address(wallet), "provenance.creator");
    }

    function test_ProvenanceSurvivesTransfer() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        uint256 tokenId = nft.mint(request, creatorSig, attestation, nodeSig);

        vm.prank(creator);
        nft.transferFrom(creator, stranger, tokenId);
        assertEq(nft.ownerOf(tokenId), stranger, "new owner");
        assertEq(nft.provenance(tokenId).creator, creator, "provenance.creator unchanged");
    }

    function testFuzz_MintAnyRequest(string memory prompt, uint64 seed, uint256 nonce, uint32 width) public {
        GenmintNFT.GenerationRequest memory request = _request();
        request.prompt = prompt;
        request.seed = seed;
        request.nonce = nonce;
        request.width = width;
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        uint256 tokenId = nft.mint(request, creatorSig, attestation, nodeSig);
        assertEq(tokenId, uint256(nft.hashRequest(request)), "token id");
        assertEq(nft.provenance(tokenId).seed, seed, "seed");
        assertEq(nft.provenance(tokenId).promptHash, keccak256(bytes(prompt)), "promptHash");
    }

    function test_SupportsErc721Interfaces() public view {
        assertTrue(nft.supportsInterface(0x01ffc9a7), "ERC-165");
        assertTrue(nft.supportsInterface(0x80ac58cd), "ERC-721");
        assertTrue(nft.supportsInterface(0x5b5e139f), "ERC-721 metadata");
        assertTrue(!nft.supportsInterface(0xffffffff), "not 0xffffffff");
    }

    // ---------------------------------------------------------------- rejections

    function test_RevertWhen_CreatorSignedByOtherKey() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        bytes memory forged = _sign(STRANGER_KEY, nft.hashRequest(request));

        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(request, forged, attestation, nodeSig);
    }

    function test_RevertWhen_RequestChangedAfterSigning() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        request.seed = 43;

        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_CreatorSignatureMalformed() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);

        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(request, hex"1234", attestation, nodeSig);
    }

    function test_RevertWhen_NodeNotRegistered() public {
        GenmintNFT.GenerationRequest memory request = _request();
        bytes32 digest = nft.hashRequest(request);
        bytes memory creatorSig = _sign(CREATOR_KEY, digest);
        GenmintNFT.Attestation memory attestation = _attestation(digest);
        attestation.node = stranger;
        bytes memory nodeSig = _sign(STRANGER_KEY, nft.hashAttestation(attestation));

        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, stranger));
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_NodeDeactivated() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        vm.prank(owner);
        nft.deactivateNode(node);

        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, node));
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_ModelUnknown() public {
        GenmintNFT.GenerationRequest memory request = _request();
        request.modelHash = keccak256("unknown model");
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);

        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, request.modelHash));
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_ModelDeactivated() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        vm.prank(owner);
        nft.deactivateModel(MODEL);

        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, MODEL));
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_RequestExpired() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        vm.warp(uint256(request.deadline) + 1);

        vm.expectRevert(
            abi.encodeWithSelector(GenmintNFT.RequestExpired.selector, request.deadline, uint256(request.deadline) + 1)
        );
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_RequestReplayed() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        uint256 tokenId = nft.mint(request, creatorSig, attestation, nodeSig);

        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AlreadyMinted.selector, tokenId));
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_AttestationForAnotherRequest() public {
        GenmintNFT.GenerationRequest memory request = _request();
        bytes memory creatorSig = _sign(CREATOR_KEY, nft.hashRequest(request));
        GenmintNFT.GenerationRequest memory other = _request();
        other.nonce = 2;
        GenmintNFT.Attestation memory attestation = _attestation(nft.hashRequest(other));
        bytes memory nodeSig = _sign(NODE_KEY, nft.hashAttestation(attestation));

        vm.expectRevert(GenmintNFT.AttestationMismatch.selector);
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_AttestationForAnotherModel() public {
        bytes32 otherModel = keccak256("other model");
        vm.prank(owner);
        nft.registerModel(otherModel, "other", "someone");
        GenmintNFT.GenerationRequest memory request = _request();
        bytes32 digest = nft.hashRequest(request);
        bytes memory creatorSig = _sign(CREATOR_KEY, digest);
        GenmintNFT.Attestation memory attestation = _attestation(digest);
        attestation.modelHash = otherModel;
        bytes memory nodeSig = _sign(NODE_KEY, nft.hashAttestation(attestation));

        vm.expectRevert(GenmintNFT.AttestationMismatch.selector);
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_NodeSignedByOtherKey() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation,) = _signed(request);
        bytes memory forged = _sign(STRANGER_KEY, nft.hashAttestation(attestation));

        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(request, creatorSig, attestation, forged);
    }

    function test_RevertWhen_AttestationChangedAfterSigning() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation, bytes memory nodeSig) = _signed(request);
        attestation.imageCid = "bafkreiemcjzqub4fpiesxyyk6uzw7vmew43conubs64twv57vp2jvyl33a";

        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(request, creatorSig, attestation, nodeSig);
    }

    function test_RevertWhen_NodeSignatureMalformed() public {
        GenmintNFT.GenerationRequest memory request = _request();
        (bytes memory creatorSig, GenmintNFT.Attestation memory attestation,) = _signed(request);

        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(request, creatorSig, attestation, new bytes(65));
    }

    function test_RevertWhen_TokenNeverMinted() public {
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 7));
        nft.provenance(7);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 7));
        nft.tokenURI(7);
    }

    // ---------------------------------------------------------------- registries

    function test_RegistriesRecordAndDeactivate() public {
        bytes32 model = keccak256("another model");
        assertTrue(!nft.isModel(model), "unknown model inactive");
        assertTrue(!nft.isNode(stranger), "unknown node inactive");

        vm.startPrank(owner);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.ModelRegistered(model, "sd-turbo", "stability");
        nft.registerModel(model, "sd-turbo", "stability");
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.NodeRegistered(stranger);
        nft.registerNode(stranger);
        vm.stopPrank();

        (string memory name, string memory author, bool active) = nft.modelInfo(model);
        assertEq(name, "sd-turbo", "model name");
        assertEq(author, "stability", "model author");
        assertTrue(active && nft.isModel(model), "model active");
        assertTrue(nft.isNode(stranger), "node active");

        vm.startPrank(owner);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.ModelDeactivated(model);
        nft.deactivateModel(model);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.NodeDeactivated(stranger);
        nft.deactivateNode(stranger);
        vm.stopPrank();

        (name,, active) = nft.modelInfo(model);
        assertEq(name, "sd-turbo", "deactivated model keeps its name");
        assertTrue(!active && !nft.isModel(model), "model inactive");
        assertTrue(!nft.isNode(stranger), "node inactive");
    }

    function test_RevertWhen_DeactivatingInactiveEntries() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, stranger));
        nft.deactivateNode(stranger);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, bytes32(0)));
        nft.deactivateModel(bytes32(0));
        vm.stopPrank();
    }

    function test_RevertWhen_RegistryCalledByNonOwner() public {
        bytes memory unauthorized = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(unauthorized);
        nft.registerNode(stranger);
        vm.expectRevert(unauthorized);
        nft.deactivateNode(node);
        vm.expectRevert(unauthorized);
        nft.registerModel(bytes32(uint256(1)), "x", "y");
        vm.expectRevert(unauthorized);
        nft.deactivateModel(MODEL);
        vm.stopPrank();
        assertTrue(nft.isNode(node) && nft.isModel(MODEL) && !nft.isNode(stranger), "registries unchanged");
    }
}
