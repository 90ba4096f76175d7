// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title GenmintNFT
/// @notice ERC-721 whose tokens are AI-generated images with on-chain provenance. A creator signs an
/// EIP-712 `GenerationRequest`; a registered node generates the image, pins it to IPFS and signs an
/// EIP-712 `Attestation` binding the request digest to the model, the pixel digest and the CIDs.
/// Anyone may submit both signatures to `mint`. The token id is the request digest, so a request
/// can be minted once.
/// @dev The owner curates two registries: node operators allowed to attest, and model hashes
/// (sha256 of the canonical model manifest) allowed to generate.
contract GenmintNFT is ERC721, Ownable, EIP712 {
    /// @notice What a creator asks for, signed by the creator (EIP-712).
    struct GenerationRequest {
        address creator;
        bytes32 modelHash;
        string prompt;
        string negativePrompt;
        uint64 seed;
        uint32 width;
        uint32 height;
        uint32 steps;
        /// classifier-free guidance scale x 100 (750 means 7.5)
        uint32 guidance;
        string scheduler;
        /// wei; not enforced in v1
        uint256 fee;
        uint256 nonce;
        /// unix seconds
        uint64 deadline;
    }

    /// @notice What a node produced for a request, signed by the node operator (EIP-712).
    struct Attestation {
        /// EIP-712 digest of the request, equal to the token id
        bytes32 requestDigest;
        bytes32 modelHash;
        /// sha256(width u32 BE || height u32 BE || RGB8 pixels)
        bytes32 pixelDigest;
        string imageCid;
        string metadataCid;
        address node;
    }

    /// @notice The provenance of one token, as returned by `provenance`.
    struct Provenance {
        address creator;
        address node;
        bytes32 modelHash;
        uint64 seed;
        uint64 mintedAt;
        uint64 mintBlock;
        bytes32 pixelDigest;
        /// keccak256 of the UTF-8 prompt bytes
        bytes32 promptHash;
        string imageCid;
        string metadataCid;
    }

    /// @dev Stored form of `Provenance`, packed into five fixed slots plus the two CID strings.
    /// uint48 holds timestamps and block numbers for millions of years.
    struct Record {
        address creator;
        uint64 seed;
        address node;
        uint48 mintedAt;
        uint48 mintBlock;
        bytes32 modelHash;
        bytes32 pixelDigest;
        bytes32 promptHash;
        string imageCid;
        string metadataCid;
    }

    /// @dev A registered model.
    struct Model {
        string name;
        string author;
        bool active;
    }

    bytes32 internal constant GENERATION_REQUEST_TYPEHASH = keccak256(
        "GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,uint64 seed,"
        "uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,uint256 fee,uint256 nonce,"
        "uint64 deadline)"
    );

    bytes32 internal constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(bytes32 requestDigest,bytes32 modelHash,bytes32 pixelDigest,string imageCid,"
        "string metadataCid,address node)"
    );

    mapping(uint256 tokenId => Record) private _records;
    mapping(address operator => bool active) private _nodes;
    mapping(bytes32 modelHash => Model) private _models;

    event NodeRegistered(address indexed operator);
    event NodeDeactivated(address indexed operator);
    event ModelRegistered(bytes32 indexed modelHash, string name, string author);
    event ModelDeactivated(bytes32 indexed modelHash);
    event Minted(
        uint256 indexed tokenId,
        address indexed creator,
        address indexed node,
        bytes32 modelHash,
        bytes32 pixelDigest,
        string imageCid,
        string metadataCid,
        bytes creatorSignature,
        bytes nodeSignature
    );

    error BadCreatorSignature();
    error BadNodeSignature();
    error NodeNotRegistered(address node);
    error ModelNotRegistered(bytes32 modelHash);
    error RequestExpired(uint64 deadline, uint256 nowTimestamp);
    error AlreadyMinted(uint256 tokenId);
    error AttestationMismatch();

    /// @param initialOwner Account that curates the node and model registries.
    constructor(address initialOwner) ERC721("genmint", "GENMINT") Ownable(initialOwner) EIP712("genmint", "1") {}

    /// @notice Mints the token for a creator-signed request and a node-signed attestation.
    /// @dev Anyone may submit. The token goes to `request.creator` (`_mint`, so no receiver callback).
    /// @param request The creator's generation request.
    /// @param creatorSignature The creator's signature over `hashRequest(request)` (EOA or ERC-1271).
    /// @param attestation The node's attestation of the generated image.
    /// @param nodeSignature The node operator's ECDSA signature over `hashAttestation(attestation)`.
    /// @return tokenId The request digest as a uint256.
    function mint(
        GenerationRequest calldata request,
        bytes calldata creatorSignature,
        Attestation calldata attestation,
        bytes calldata nodeSignature
    ) external returns (uint256 tokenId) {
        bytes32 digest = _checkRequest(request, creatorSignature);
        _checkAttestation(digest, request.modelHash, attestation, nodeSignature);
        tokenId = uint256(digest);
        if (_ownerOf(tokenId) != address(0)) revert AlreadyMinted(tokenId);

        _records[tokenId] = Record({
            creator: request.creator,
            seed: request.seed,
            node: attestation.node,
            mintedAt: uint48(block.timestamp),
            mintBlock: uint48(block.number),
            modelHash: request.modelHash,
            pixelDigest: attestation.pixelDigest,
            promptHash: keccak256(bytes(request.prompt)),
            imageCid: attestation.imageCid,
            metadataCid: attestation.metadataCid
        });
        _mint(request.creator, tokenId);
        _emitMinted(tokenId, request.creator, attestation, creatorSignature, nodeSignature);
    }

    /// @notice EIP-712 digest of a generation request; the token id it would mint.
    /// @param request The generation request.
    /// @return The digest keccak256("\x19\x01" || domainSeparator || structHash).
    function hashRequest(GenerationRequest calldata request) public view returns (bytes32) {
        return _hashTypedDataV4(_requestStructHash(request));
    }

    /// @notice EIP-712 digest of an attestation, the message a node signs.
    /// @param attestation The attestation.
    /// @return The digest keccak256("\x19\x01" || domainSeparator || structHash).
    function hashAttestation(Attestation calldata attestation) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    ATTESTATION_TYPEHASH,
                    attestation.requestDigest,
                    attestation.modelHash,
                    attestation.pixelDigest,
                    keccak256(bytes(attestation.imageCid)),
                    keccak256(bytes(attestation.metadataCid)),
                    attestation.node
                )
            )
        );
    }

    /// @notice The provenance record of a minted token.
    /// @dev Reverts with `ERC721NonexistentToken` if the token was never minted.
    /// @param tokenId The token id.
    /// @return The creator, node, model, seed, mint time and block, digests and CIDs.
    function provenance(uint256 tokenId) external view returns (Provenance memory) {
        _requireOwned(tokenId);
        Record storage record = _records[tokenId];
        return Provenance({
            creator: record.creator,
            node: record.node,
            modelHash: record.modelHash,
            seed: record.seed,
            mintedAt: record.mintedAt,
            mintBlock: record.mintBlock,
            pixelDigest: record.pixelDigest,
            promptHash: record.promptHash,
            imageCid: record.imageCid,
            metadataCid: record.metadataCid
        });
    }

    /// @notice The token's metadata location, `ipfs://` followed by the metadata CID.
    /// @dev Reverts with `ERC721NonexistentToken` if the token was never minted.
    /// @param tokenId The token id.
    /// @return The metadata URI.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return string.concat("ipfs://", _records[tokenId].metadataCid);
    }

    /// @notice Allows `operator` to attest generations. Only the owner.
    /// @param operator The node operator's address.
    function registerNode(address operator) external onlyOwner {
        _nodes[operator] = true;
        emit NodeRegistered(operator);
    }

    /// @notice Stops `operator` from attesting new generations; minted tokens stay. Only the owner.
    /// @dev Reverts with `NodeNotRegistered` if the operator is not active.
    /// @param operator The node operator's address.
    function deactivateNode(address operator) external onlyOwner {
        if (!_nodes[operator]) revert NodeNotRegistered(operator);
        _nodes[operator] = false;
        emit NodeDeactivated(operator);
    }

    /// @notice Whether `operator` may attest generations.
    /// @param operator The node operator's address.
    /// @return True if registered and active.
    function isNode(address operator) external view returns (bool) {
        return _nodes[operator];
    }

    /// @notice Registers (or re-registers and re-activates) a model. Only the owner.
    /// @param modelHash sha256 of the model's canonical manifest.
    /// @param name Human-readable model name.
    /// @param author Model author or publisher.
    function registerModel(bytes32 modelHash, string calldata name, string calldata author) external onlyOwner {
        _models[modelHash] = Model({name: name, author: author, active: true});
        emit ModelRegistered(modelHash, name, author);
    }

    /// @notice Stops new mints with a model; its record stays readable. Only the owner.
    /// @dev Reverts with `ModelNotRegistered` if the model is not active.
    /// @param modelHash sha256 of the model's canonical manifest.
    function deactivateModel(bytes32 modelHash) external onlyOwner {
        if (!_models[modelHash].active) revert ModelNotRegistered(modelHash);
        _models[modelHash].active = false;
        emit ModelDeactivated(modelHash);
    }

    /// @notice Whether mints may use `modelHash`.
    /// @param modelHash sha256 of the model's canonical manifest.
    /// @return True if registered and active.
    function isModel(bytes32 modelHash) external view returns (bool) {
        return _models[modelHash].active;
    }

    /// @notice The registry entry of a model; empty strings and false if never registered.
    /// @param modelHash sha256 of the model's canonical manifest.
    /// @return name The model name.
    /// @return author The model author.
    /// @return active Whether mints may use it.
    function modelInfo(bytes32 modelHash)
        external
        view
        returns (string memory name, string memory author, bool active)
    {
        Model storage model = _models[modelHash];
        return (model.name, model.author, model.active);
    }

    /// @dev Checks deadline, model and creator signature (in that order); returns the request digest.
    function _checkRequest(GenerationRequest calldata request, bytes calldata creatorSignature)
        private
        view
        returns (bytes32 digest)
    {
        // A deadline is a coarse expiry; validator skew of seconds does not matter here.
        // forge-lint: disable-next-line(block-timestamp)
        if (request.deadline < block.timestamp) revert RequestExpired(request.deadline, block.timestamp);
        if (!_models[request.modelHash].active) revert ModelNotRegistered(request.modelHash);
        digest = hashRequest(request);
        if (!SignatureChecker.isValidSignatureNow(request.creator, digest, creatorSignature)) {
            revert BadCreatorSignature();
        }
    }

    /// @dev Checks that the attestation is for this request and model, is signed by its node, and that
    /// the node is registered (in that order).
    function _checkAttestation(
        bytes32 requestDigest,
        bytes32 modelHash,
        Attestation calldata attestation,
        bytes calldata nodeSignature
    ) private view {
        if (attestation.requestDigest != requestDigest || attestation.modelHash != modelHash) {
            revert AttestationMismatch();
        }
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(hashAttestation(attestation), nodeSignature);
        if (error != ECDSA.RecoverError.NoError || signer != attestation.node) revert BadNodeSignature();
        if (!_nodes[attestation.node]) revert NodeNotRegistered(attestation.node);
    }

    /// @dev Separate frame for the event to keep `mint` within the stack limit.
    function _emitMinted(
        uint256 tokenId,
        address creator,
        Attestation calldata attestation,
        bytes calldata creatorSignature,
        bytes calldata nodeSignature
    ) private {
        emit Minted(
            tokenId,
            creator,
            attestation.node,
            attestation.modelHash,
            attestation.pixelDigest,
            attestation.imageCid,
            attestation.metadataCid,
            creatorSignature,
            nodeSignature
        );
    }

    /// @dev Struct hash of a request; the fields are encoded in two halves to stay within the stack limit
    /// (every encoded member is one static word, so the concatenation equals one `abi.encode`).
    function _requestStructHash(GenerationRequest calldata request) private pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                abi.encode(
                    GENERATION_REQUEST_TYPEHASH,
                    request.creator,
                    request.modelHash,
                    keccak256(bytes(request.prompt)),
                    keccak256(bytes(request.negativePrompt)),
                    request.seed,
                    request.width
                ),
                abi.encode(
                    request.height,
                    request.steps,
                    request.guidance,
                    keccak256(bytes(request.scheduler)),
                    request.fee,
                    request.nonce,
                    request.deadline
                )
            )
        );
    }
}
