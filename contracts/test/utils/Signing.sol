// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../Vm.sol";
import {GenmintNFT} from "../../src/GenmintNFT.sol";
import {RawCid} from "../../src/RawCid.sol";

/// @notice The EIP-712 signing helpers shared by the tests, the vector script and the gas benchmark:
/// anvil's keys, the type strings, the standard request, forge's signatures (65-byte and ERC-2098
/// compact), and the attestation and fully signed job for a request and its output.
library Signing {
    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // Anvil's default accounts 0 (owner), 1 (node operator) and 2 (creator).
    uint256 internal constant OWNER_KEY = 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    uint256 internal constant NODE_KEY = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
    uint256 internal constant CREATOR_KEY = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;

    /// The EIP-712 type strings GenmintNFT hashes requests and attestations with.
    string internal constant REQUEST_TYPE = "GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,uint64 seed,"
        "uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,uint256 fee,uint256 nonce,"
        "uint64 deadline)";
    string internal constant ATTESTATION_TYPE = "Attestation(bytes32 requestDigest,bytes32 modelHash,bytes32 pixelDigest,string imageCid,"
        "string metadataCid,address node)";

    /// @dev The standard request: the lighthouse prompt, no negative prompt, seed 42, 512 x 512,
    /// 20 ddim steps at guidance 7.5. This and `signedJob` fill their (zero-allocated) return value
    /// rather than allocate a struct literal beside it, so the gas tests' figures stay as they were.
    function defaultRequest(address creator, bytes32 modelHash, uint256 fee, uint256 nonce, uint64 deadline)
        internal
        pure
        returns (GenmintNFT.GenerationRequest memory request)
    {
        request.creator = creator;
        request.modelHash = modelHash;
        request.prompt = "a lighthouse on a cliff at sunset, oil painting";
        request.seed = 42;
        request.width = 512;
        request.height = 512;
        request.steps = 20;
        request.guidance = 750;
        request.scheduler = "ddim";
        request.fee = fee;
        request.nonce = nonce;
        request.deadline = deadline;
    }

    /// @dev r || s || v, v = 27 or 28.
    function sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev An ERC-2098 compact signature (r, vs).
    function signCompact(uint256 key, bytes32 digest) internal pure returns (GenmintNFT.CompactSignature memory) {
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(key, digest);
        return GenmintNFT.CompactSignature({r: r, vs: _vs(v, s)});
    }

    /// @dev An ERC-2098 compact signature as bytes (r, vs).
    function signCompactBytes(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        GenmintNFT.CompactSignature memory signature = signCompact(key, digest);
        return abi.encodePacked(signature.r, signature.vs);
    }

    /// @dev The ERC-2098 compact form of a 65-byte r || s || v signature.
    function toCompact(bytes memory signature) internal pure returns (GenmintNFT.CompactSignature memory) {
        (bytes32 r, bytes32 s) = abi.decode(signature, (bytes32, bytes32));
        return GenmintNFT.CompactSignature({r: r, vs: _vs(uint8(signature[64]), s)});
    }

    /// @dev The attestation `output` forms with `request`, as the node signs it.
    function attestationOf(GenmintNFT nft, GenmintNFT.GenerationRequest memory request, GenmintNFT.Output memory output)
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

    /// @dev A job for `request` and `output`: the creator's signature compact as bytes, the node's compact.
    function signedJob(
        GenmintNFT nft,
        GenmintNFT.GenerationRequest memory request,
        GenmintNFT.Output memory output,
        uint256 creatorKey,
        uint256 nodeKey
    ) internal view returns (GenmintNFT.Job memory job) {
        job.request = request;
        job.creatorSignature = signCompactBytes(creatorKey, nft.hashRequest(request));
        job.output = output;
        job.nodeSignature = signCompact(nodeKey, nft.hashAttestation(attestationOf(nft, request, output)));
    }

    /// @dev ERC-2098's vs: the y-parity (v - 27) in the top bit of s.
    function _vs(uint8 v, bytes32 s) private pure returns (bytes32) {
        return bytes32(uint256(s) | (uint256(v - 27) << 255));
    }
}
