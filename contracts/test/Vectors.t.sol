// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "./utils/Signing.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @notice Checks the shared EIP-712 vectors (test/vectors/eip712.json) against GenmintNFT deployed
/// exactly as anvil's account 0 first deploys it: every type hash, digest and signature in the file,
/// and a real mint of every case with the file's signatures (the metadata CID given as its digest, the
/// node's signature in its compact form), with the request's fee paid from a deposit.
contract VectorsTest is Test {
    /// Anvil's account 0; its first contract (nonce 0) is the vectors' verifying contract.
    address internal constant DEPLOYER = 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266;

    string internal json;
    GenmintNFT internal nft;

    function setUp() public {
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/vectors/eip712.json"));
        assertEq(vm.parseJsonString(json, ".domain.name"), "genmint", "domain.name");
        assertEq(vm.parseJsonString(json, ".domain.version"), "1", "domain.version");

        vm.chainId(vm.parseUint(vm.parseJsonString(json, ".domain.chainId")));
        vm.warp(1); // every case's deadline is at least 1
        vm.prank(DEPLOYER);
        nft = new GenmintNFT(DEPLOYER, 0);
        assertEq(address(nft), vm.parseJsonAddress(json, ".domain.verifyingContract"), "verifyingContract");
    }

    function test_VectorsHaveEnoughCases() public view {
        assertTrue(_caseCount() >= 3, "at least 3 cases");
    }

    function test_TypeHashes() public view {
        for (uint256 i = 0; i < _caseCount(); i++) {
            string memory c = _case(i);
            assertEq(
                vm.parseJsonBytes32(json, string.concat(c, ".requestTypeHash")),
                keccak256(bytes(Signing.REQUEST_TYPE)),
                "requestTypeHash"
            );
            assertEq(
                vm.parseJsonBytes32(json, string.concat(c, ".attestationTypeHash")),
                keccak256(bytes(Signing.ATTESTATION_TYPE)),
                "attestationTypeHash"
            );
        }
    }

    function test_RequestDigestsAndCreatorSignatures() public view {
        for (uint256 i = 0; i < _caseCount(); i++) {
            string memory c = _case(i);
            GenmintNFT.GenerationRequest memory request = _request(c);
            bytes32 digest = _checkDigest(c, ".requestDigest", nft.hashRequest(request));
            _checkSignature(c, "creator", digest, request.creator);
        }
    }

    function test_AttestationDigestsAndNodeSignatures() public view {
        for (uint256 i = 0; i < _caseCount(); i++) {
            string memory c = _case(i);
            GenmintNFT.Attestation memory attestation = _attestation(c);
            assertEq(
                attestation.requestDigest,
                vm.parseJsonBytes32(json, string.concat(c, ".requestDigest")),
                string.concat(c, ".attestation.requestDigest")
            );
            bytes32 digest = _checkDigest(c, ".attestationDigest", nft.hashAttestation(attestation));
            _checkSignature(c, "node", digest, attestation.node);
        }
    }

    function test_EveryCaseMints() public {
        for (uint256 i = 0; i < _caseCount(); i++) {
            string memory c = _case(i);
            GenmintNFT.GenerationRequest memory request = _request(c);
            GenmintNFT.Attestation memory attestation = _attestation(c);
            vm.startPrank(DEPLOYER);
            if (!nft.isNode(attestation.node)) nft.registerNode(attestation.node);
            if (!nft.isModel(request.modelHash)) {
                nft.registerModel(request.modelHash, "vector model", "genmint", "");
            }
            vm.stopPrank();

            GenmintNFT.Job memory job = GenmintNFT.Job({
                request: request,
                creatorSignature: vm.parseJsonBytes(json, string.concat(c, ".creatorSignature")),
                output: GenmintNFT.Output({
                    pixelDigest: attestation.pixelDigest,
                    metadataDigest: _rawCidDigest(attestation.metadataCid),
                    node: attestation.node,
                    imageCid: attestation.imageCid
                }),
                nodeSignature: Signing.toCompact(vm.parseJsonBytes(json, string.concat(c, ".nodeSignature")))
            });
            if (request.fee > type(uint128).max) {
                // No deposit can pay it.
                vm.expectRevert(
                    abi.encodeWithSelector(
                        GenmintNFT.InsufficientFunds.selector,
                        request.creator,
                        nft.fundsOf(request.creator),
                        request.fee
                    )
                );
                nft.mint(job);
                continue;
            }
            vm.deal(request.creator, request.fee);
            vm.prank(request.creator);
            nft.deposit{value: request.fee}();

            uint256 tokenId = nft.mint(job);
            assertEq(bytes32(tokenId), vm.parseJsonBytes32(json, string.concat(c, ".requestDigest")), "token id");
            assertEq(nft.ownerOf(tokenId), request.creator, "owner");
            assertEq(nft.tokenURI(tokenId), string.concat("ipfs://", attestation.metadataCid), "tokenURI");
            assertEq(nft.provenance(tokenId).node, attestation.node, "provenance.node");
            bytes memory proof = abi.encodePacked(job.nodeSignature.r, job.nodeSignature.vs, job.creatorSignature);
            assertTrue(
                nft.verify(abi.encode(request), abi.encodePacked(attestation.pixelDigest, attestation.imageCid), proof),
                "verify"
            );
        }
    }

    // ---------------------------------------------------------------- checks

    /// @dev Asserts that case `c`'s digest member `key` equals the contract's `digest`, and returns it.
    function _checkDigest(string memory c, string memory key, bytes32 digest) internal view returns (bytes32) {
        assertEq(digest, vm.parseJsonBytes32(json, string.concat(c, key)), string.concat(c, key));
        return digest;
    }

    /// @dev Asserts that case `c`'s `<role>Signature` is forge's signature of `digest` with its
    /// `<role>PrivateKey`, and that it recovers `signer`.
    function _checkSignature(string memory c, string memory role, bytes32 digest, address signer) internal view {
        string memory member = string.concat(c, ".", role, "Signature");
        bytes memory signature = vm.parseJsonBytes(json, member);
        uint256 key = uint256(vm.parseJsonBytes32(json, string.concat(c, ".", role, "PrivateKey")));
        assertEq(Signing.sign(key, digest), signature, member);
        assertEq(ECDSA.recover(digest, signature), signer, string.concat(c, " ", role, " recovers"));
    }

    // ---------------------------------------------------------------- parsing

    function _caseCount() internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, string.concat(".cases[", vm.toString(n), "]"))) n++;
    }

    function _case(uint256 i) internal pure returns (string memory) {
        return string.concat(".cases[", vm.toString(i), "]");
    }

    function _request(string memory c) internal view returns (GenmintNFT.GenerationRequest memory request) {
        string memory r = string.concat(c, ".request");
        request.creator = vm.parseJsonAddress(json, string.concat(r, ".creator"));
        request.modelHash = vm.parseJsonBytes32(json, string.concat(r, ".modelHash"));
        request.prompt = vm.parseJsonString(json, string.concat(r, ".prompt"));
        request.negativePrompt = vm.parseJsonString(json, string.concat(r, ".negativePrompt"));
        request.seed = uint64(_uint(r, ".seed"));
        request.width = uint32(_uint(r, ".width"));
        request.height = uint32(_uint(r, ".height"));
        request.steps = uint32(_uint(r, ".steps"));
        request.guidance = uint32(_uint(r, ".guidance"));
        request.scheduler = vm.parseJsonString(json, string.concat(r, ".scheduler"));
        request.fee = _uint(r, ".fee");
        request.nonce = _uint(r, ".nonce");
        request.deadline = uint64(_uint(r, ".deadline"));
        assertEq(request.seed, _uint(r, ".seed"), "seed fits uint64");
        assertEq(request.deadline, _uint(r, ".deadline"), "deadline fits uint64");
        assertEq(request.guidance, _uint(r, ".guidance"), "guidance fits uint32");
    }

    function _attestation(string memory c) internal view returns (GenmintNFT.Attestation memory attestation) {
        string memory a = string.concat(c, ".attestation");
        attestation.requestDigest = vm.parseJsonBytes32(json, string.concat(a, ".requestDigest"));
        attestation.modelHash = vm.parseJsonBytes32(json, string.concat(a, ".modelHash"));
        attestation.pixelDigest = vm.parseJsonBytes32(json, string.concat(a, ".pixelDigest"));
        attestation.imageCid = vm.parseJsonString(json, string.concat(a, ".imageCid"));
        attestation.metadataCid = vm.parseJsonString(json, string.concat(a, ".metadataCid"));
        attestation.node = vm.parseJsonAddress(json, string.concat(a, ".node"));
    }

    /// @dev A decimal-string integer member of the object at `path`.
    function _uint(string memory path, string memory key) internal view returns (uint256) {
        return vm.parseUint(vm.parseJsonString(json, string.concat(path, key)));
    }

    /// @dev The sha2-256 digest inside a base32 CIDv1 of a raw block ("bafkrei..."), decoded bit by bit.
    function _rawCidDigest(string memory cid) internal pure returns (bytes32 digest) {
        bytes memory text = bytes(cid);
        assertEq(text.length, 59, "raw sha2-256 CIDv1 length");
        uint256 bits = 0;
        uint256 count = 0;
        bytes memory binary = new bytes(36);
        uint256 n = 0;
        for (uint256 i = 1; i < text.length; i++) {
            uint8 ch = uint8(text[i]);
            uint256 value = ch >= 0x61 ? ch - 0x61 : ch - 0x32 + 26;
            bits = (bits << 5) | value;
            count += 5;
            if (count >= 8) {
                count -= 8;
                // forge-lint: disable-next-line(unsafe-typecast) the low byte is the next output byte
                binary[n++] = bytes1(uint8(bits >> count));
            }
        }
        assertEq(
            keccak256(abi.encodePacked(binary[0], binary[1], binary[2], binary[3])),
            keccak256(hex"01551220"),
            "CIDv1, raw, sha2-256, 32 bytes"
        );
        assembly ("memory-safe") {
            digest := mload(add(binary, 36))
        }
    }
}
