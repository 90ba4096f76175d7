// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {Account} from "./Accounts.sol";
import {IERC7007} from "./interfaces/IERC7007.sol";
import {PackedERC721} from "./PackedERC721.sol";
import {RawCid} from "./RawCid.sol";

/// @title GenmintNFT
/// @notice ERC-721 whose tokens are AI-generated images with provenance anyone can check. A creator
/// signs an EIP-712 `GenerationRequest`; a registered node generates the image, pins it and its
/// metadata to IPFS and signs an EIP-712 `Attestation` binding the request digest to the model, the
/// pixel digest and both CIDs. Anyone may submit the pair (`mint`, or `mintBatch` for many); the
/// token id is the request digest, so each request mints once, to its creator, and the request's
/// signed fee moves from the creator's deposit to the node.
///
/// Standards: ERC-721 with metadata (`tokenURI` = `ipfs://<metadata CID>`), ERC-7007 (see `verify`
/// for the encodings of prompt, aigcData and proof), ERC-2981 (the creator receives royalties at a
/// capped rate), ERC-4906.
///
/// What the chain keeps per token: one word holding the owner, the creator's and the node's registry
/// numbers and the mint block, and one word holding the sha2-256 digest of the metadata document
/// (which rebuilds its CID). Every other provenance field is in the mint's `AigcData` event (outputs
/// and both signatures) or committed to by the token id itself (the request digest): anyone can
/// check a claimed request and outputs against the chain with `verify`.
///
/// @dev No upgradeability. The owner (two-step transfer) curates the node and model registries, sets
/// the royalty rate and pauses minting; it cannot move tokens or deposits.
contract GenmintNFT is PackedERC721, IERC7007, IERC2981, IERC4906, EIP712, Ownable2Step, Pausable {
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
        /// wei moved from the creator's deposit to the node at mint
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

    /// @notice The attested outputs as submitted to `mint`: an `Attestation` without the fields the
    /// request already fixes, and with the metadata CID as the digest it is rebuilt from.
    struct Output {
        /// sha256(width u32 BE || height u32 BE || RGB8 pixels)
        bytes32 pixelDigest;
        /// sha2-256 of the metadata document; its CID is the CIDv1 raw block of this digest
        bytes32 metadataDigest;
        /// the attesting node operator
        address node;
        string imageCid;
    }

    /// @notice An ECDSA signature in the ERC-2098 compact form: `r`, and `s` with the y-parity in its
    /// top bit.
    struct CompactSignature {
        bytes32 r;
        bytes32 vs;
    }

    /// @notice One job to mint: the signed request and the signed outputs.
    struct Job {
        GenerationRequest request;
        /// the creator's signature over `hashRequest(request)`: ECDSA (64-byte compact or 65-byte), or
        /// ERC-1271
        bytes creatorSignature;
        Output output;
        /// the node's signature over the attestation that `output` forms with the request
        CompactSignature nodeSignature;
    }

    /// @notice What the chain stores for a token, as returned by `provenance`.
    struct Record {
        address creator;
        address node;
        uint64 mintBlock;
        string metadataCid;
    }

    /// @dev The node of the latest job in a mint call and the fees owed to it, paid in one write when
    /// the node changes or the call ends (a batch usually has one node). Nothing outside the call can
    /// change the registry meanwhile, so the node's checked status holds for the whole call.
    struct NodeTab {
        address node;
        uint24 nodeId;
        uint256 fees;
    }

    /// @dev A registered model; `active` first so a mint reads one word.
    struct Model {
        bool active;
        string name;
        string author;
        string licenseUri;
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

    /// @notice The highest royalty rate the owner may set, in basis points (10%).
    uint96 public constant MAX_ROYALTY_BPS = 1000;
    /// @notice The most jobs one `mintBatch` takes (keeps a batch within a block's gas).
    uint256 public constant MAX_BATCH = 100;

    mapping(uint256 tokenId => bytes32 digest) private _metadataDigests;
    mapping(bytes32 modelHash => Model) private _models;
    mapping(uint32 creatorId => address creator) private _creators;
    mapping(uint24 nodeId => address operator) private _nodes;
    uint32 private _creatorCount;
    uint24 private _nodeCount;
    /// @notice Royalty rate paid to a token's creator, in basis points.
    uint96 public royaltyBps;

    event NodeRegistered(address indexed operator, uint24 nodeId);
    event NodeDeactivated(address indexed operator);
    event ModelRegistered(bytes32 indexed modelHash, string name, string author, string licenseUri);
    event ModelDeactivated(bytes32 indexed modelHash);
    event CreatorNumbered(address indexed creator, uint32 creatorId);
    event Deposited(address indexed account, address indexed from, uint256 amount);
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    event RoyaltyUpdated(uint96 bps);

    error BadCreatorSignature();
    error BadNodeSignature();
    error NodeNotRegistered(address node);
    error ModelNotRegistered(bytes32 modelHash);
    error RequestExpired(uint64 deadline, uint256 nowTimestamp);
    error AlreadyMinted(uint256 tokenId);
    error InsufficientFunds(address account, uint256 available, uint256 needed);
    error FundsOverflow(address account);
    error PaymentFailed(address to, uint256 amount);
    error RoyaltyTooHigh(uint96 bps, uint96 max);
    error BatchSize(uint256 size, uint256 max);
    error RegistryFull();
    error AigcDataMismatch(uint256 tokenId);

    /// @param initialOwner Account that curates the registries, sets the royalty rate and pauses.
    /// @param initialRoyaltyBps Creator royalty rate in basis points, at most `MAX_ROYALTY_BPS`.
    constructor(address initialOwner, uint96 initialRoyaltyBps) EIP712("genmint", "1") Ownable(initialOwner) {
        _setRoyalty(initialRoyaltyBps);
    }

    // ---------------------------------------------------------------- minting

    /// @notice Mints the token of one signed request and its signed outputs, to the request's creator.
    /// @dev Anyone may submit. Checks, in order: deadline, model, replay, creator signature (ECDSA,
    /// else ERC-1271), node signature, node registry, creator funds.
    /// @param job The request, the creator's signature over `hashRequest(request)`, the outputs and the
    /// node's signature over the attestation they form with the request (`hashAttestation`).
    /// @return tokenId The request digest as a uint256.
    function mint(Job calldata job) external whenNotPaused returns (uint256 tokenId) {
        NodeTab memory tab;
        tokenId = _mintJob(job, tab);
        _settle(tab);
    }

    /// @notice Mints several jobs in one transaction, all or none; a node settles what it has ready.
    /// @param jobs Between 1 and `MAX_BATCH` jobs, each checked as in `mint`.
    /// @return tokenIds The request digests, in job order.
    function mintBatch(Job[] calldata jobs) external whenNotPaused returns (uint256[] memory tokenIds) {
        if (jobs.length == 0 || jobs.length > MAX_BATCH) revert BatchSize(jobs.length, MAX_BATCH);
        tokenIds = new uint256[](jobs.length);
        NodeTab memory tab;
        for (uint256 i = 0; i < jobs.length; i++) {
            // Each job's scratch memory is dead once it returns: reuse it, so memory (whose price grows
            // with its size) stays the size of one job.
            uint256 freeMemory;
            assembly ("memory-safe") {
                freeMemory := mload(0x40)
            }
            tokenIds[i] = _mintJob(jobs[i], tab);
            assembly ("memory-safe") {
                mstore(0x40, freeMemory)
            }
        }
        _settle(tab);
    }

    // ---------------------------------------------------------------- ERC-7007

    /// @notice Whether `proof` shows that `aigcData` is the minted output of `prompt`: the request's token
    /// exists, its creator signed the request, and the node that minted it signed the attestation of
    /// these outputs with the token's metadata CID. Reverts if `prompt` is not an ABI-encoded
    /// `GenerationRequest`.
    /// @param prompt `abi.encode(request)`: the `GenerationRequest`.
    /// @param aigcData `abi.encodePacked(pixelDigest, imageCid)`: the generated image, as the 32-byte
    /// pixel digest followed by the image CID's characters. (The node and the metadata CID are the
    /// token's record: `provenance`.)
    /// @param proof `abi.encodePacked(nodeSignature.r, nodeSignature.vs, creatorSignature)`: the node's
    /// compact signature (64 bytes), then the creator's (64 or 65 bytes for ECDSA, any length for
    /// ERC-1271).
    function verify(bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        public
        view
        returns (bool success)
    {
        if (aigcData.length < 32 || proof.length < 64) return false;
        GenerationRequest memory request = abi.decode(prompt, (GenerationRequest));
        // The hashing functions read calldata (the mint path); a view can afford the self-calls.
        bytes32 digest = this.hashRequest(request);
        uint256 tokenId = uint256(digest);
        if (_ownerOf(tokenId) == address(0)) return false;
        if (!_isCreatorSignature(request.creator, digest, proof[64:])) return false;
        Attestation memory attestation = Attestation({
            requestDigest: digest,
            modelHash: request.modelHash,
            pixelDigest: bytes32(aigcData[0:32]),
            imageCid: string(aigcData[32:]),
            metadataCid: RawCid.fromSha256(_metadataDigests[tokenId]),
            node: _nodes[_tokenNodeId(_tokenData(tokenId))]
        });
        (address signer, ECDSA.RecoverError error,) =
            ECDSA.tryRecover(this.hashAttestation(attestation), bytes32(proof[0:32]), bytes32(proof[32:64]));
        return error == ECDSA.RecoverError.NoError && signer == attestation.node;
    }

    /// @notice Announces a minted token's AIGC data again (`AigcData`), for indexers that missed the
    /// mint. Changes no state; reverts with `AigcDataMismatch` unless `prompt` is the canonical encoding
    /// of the token's request and `verify` accepts the data.
    function addAigcData(uint256 tokenId, bytes calldata prompt, bytes calldata aigcData, bytes calldata proof)
        external
    {
        _requireOwned(tokenId);
        GenerationRequest memory request = abi.decode(prompt, (GenerationRequest));
        if (
            uint256(this.hashRequest(request)) != tokenId || keccak256(prompt) != keccak256(abi.encode(request))
                || !verify(prompt, aigcData, proof)
        ) revert AigcDataMismatch(tokenId);
        emit AigcData(tokenId, prompt, aigcData, proof);
    }

    // ---------------------------------------------------------------- views

    /// @notice EIP-712 digest of a generation request; the token id it would mint.
    function hashRequest(GenerationRequest calldata request) public view returns (bytes32) {
        (bytes32 structHash,) = _requestHashes(request);
        return _hashTypedDataV4(structHash);
    }

    /// @notice EIP-712 digest of an attestation, the message a node signs.
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

    /// @notice What the chain stores for a minted token; the rest of its provenance is in the token id
    /// (the request digest) and the mint's `AigcData` event, found in block `mintBlock`.
    /// @dev Reverts with `ERC721NonexistentToken` if the token was never minted.
    function provenance(uint256 tokenId) external view returns (Record memory) {
        _requireOwned(tokenId);
        uint96 data = _tokenData(tokenId);
        return Record({
            creator: _creators[_tokenCreatorId(data)],
            node: _nodes[_tokenNodeId(data)],
            mintBlock: _tokenMintBlock(data),
            metadataCid: RawCid.fromSha256(_metadataDigests[tokenId])
        });
    }

    /// @notice The ERC-721 collection name.
    function name() external pure returns (string memory) {
        return "genmint";
    }

    /// @notice The ERC-721 collection symbol.
    function symbol() external pure returns (string memory) {
        return "GENMINT";
    }

    /// @notice `ipfs://` and the token's metadata CID.
    /// @dev Reverts with `ERC721NonexistentToken` if the token was never minted.
    function tokenURI(uint256 tokenId) external view returns (string memory) {
        _requireOwned(tokenId);
        return string.concat("ipfs://", RawCid.fromSha256(_metadataDigests[tokenId]));
    }

    /// @notice ERC-2981: the token's creator receives `royaltyBps` of the sale price.
    /// @dev Reverts with `ERC721NonexistentToken` if the token was never minted.
    function royaltyInfo(uint256 tokenId, uint256 salePrice)
        external
        view
        returns (address receiver, uint256 royaltyAmount)
    {
        _requireOwned(tokenId);
        return (_creators[_tokenCreatorId(_tokenData(tokenId))], salePrice * royaltyBps / 10_000);
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view override(PackedERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC7007).interfaceId || interfaceId == type(IERC2981).interfaceId
            || interfaceId == bytes4(0x49064906) || super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- funds

    /// @notice Adds ETH to the sender's deposit, from which the fees of its requests are paid.
    function deposit() external payable {
        _credit(msg.sender, msg.value);
        emit Deposited(msg.sender, msg.sender, msg.value);
    }

    /// @notice Adds ETH to `account`'s deposit.
    function depositFor(address account) external payable {
        _credit(account, msg.value);
        emit Deposited(account, msg.sender, msg.value);
    }

    /// @notice Sends `amount` of the sender's funds (unused deposit and earned fees) to the sender.
    function withdraw(uint256 amount) external {
        withdrawTo(payable(msg.sender), amount);
    }

    /// @notice Sends `amount` of the sender's funds to `to`.
    function withdrawTo(address payable to, uint256 amount) public {
        Account account = _account(msg.sender);
        uint128 funds = account.funds();
        if (amount > funds) revert InsufficientFunds(msg.sender, funds, amount);
        // Checks, effects, interactions: the balance drops before the call.
        // forge-lint: disable-next-line(unsafe-typecast) amount <= funds, a uint128
        _setAccount(msg.sender, account.withFunds(funds - uint128(amount)));
        emit Withdrawn(msg.sender, to, amount);
        (bool sent,) = to.call{value: amount}("");
        if (!sent) revert PaymentFailed(to, amount);
    }

    /// @notice An account's funds: unused deposit plus earned fees, in wei.
    function fundsOf(address account) external view returns (uint256) {
        return _account(account).funds();
    }

    // ---------------------------------------------------------------- registries (owner)

    /// @notice Allows `operator` to attest generations, or re-activates it. Only the owner.
    function registerNode(address operator) external onlyOwner {
        Account account = _account(operator);
        uint24 nodeId = account.nodeId();
        if (nodeId == 0) {
            if (_nodeCount == type(uint24).max) revert RegistryFull();
            nodeId = ++_nodeCount;
            _nodes[nodeId] = operator;
        }
        _setAccount(operator, account.withNode(nodeId, true));
        emit NodeRegistered(operator, nodeId);
    }

    /// @notice Stops `operator` from attesting new generations; minted tokens keep it. Only the owner.
    /// Tells marketplaces to refresh (ERC-4906): a token's provenance check reports registry status.
    function deactivateNode(address operator) external onlyOwner {
        Account account = _account(operator);
        if (!account.isActiveNode()) revert NodeNotRegistered(operator);
        _setAccount(operator, account.withNode(account.nodeId(), false));
        emit NodeDeactivated(operator);
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    /// @notice Registers a model, or updates and re-activates it. Only the owner.
    /// @param modelHash sha256 of the model's canonical manifest.
    /// @param name_ Human-readable model name.
    /// @param author Model author or publisher.
    /// @param licenseUri Where the model's licence is published.
    function registerModel(bytes32 modelHash, string calldata name_, string calldata author, string calldata licenseUri)
        external
        onlyOwner
    {
        _models[modelHash] = Model({active: true, name: name_, author: author, licenseUri: licenseUri});
        emit ModelRegistered(modelHash, name_, author, licenseUri);
    }

    /// @notice Stops new mints with a model; its entry stays readable. Only the owner.
    function deactivateModel(bytes32 modelHash) external onlyOwner {
        if (!_models[modelHash].active) revert ModelNotRegistered(modelHash);
        _models[modelHash].active = false;
        emit ModelDeactivated(modelHash);
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    /// @notice Sets the creator royalty rate. Only the owner.
    function setRoyalty(uint96 bps) external onlyOwner {
        _setRoyalty(bps);
    }

    /// @notice Stops minting (and only minting). Only the owner.
    function pause() external onlyOwner {
        _pause();
    }

    /// @notice Resumes minting. Only the owner.
    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Whether `operator` may attest generations now.
    function isNode(address operator) external view returns (bool) {
        return _account(operator).isActiveNode();
    }

    /// @notice Whether mints may use `modelHash` now.
    function isModel(bytes32 modelHash) external view returns (bool) {
        return _models[modelHash].active;
    }

    /// @notice The registry entry of a model; empty and inactive if never registered.
    function modelInfo(bytes32 modelHash)
        external
        view
        returns (string memory name_, string memory author, string memory licenseUri, bool active)
    {
        Model storage model = _models[modelHash];
        return (model.name, model.author, model.licenseUri, model.active);
    }

    // ---------------------------------------------------------------- internals

    /// @dev One job: every check, the fee, the token, the event.
    function _mintJob(Job calldata job, NodeTab memory tab) private returns (uint256 tokenId) {
        GenerationRequest calldata request = job.request;
        Output calldata output = job.output;
        bytes32 promptHash;
        uint24 nodeId;
        {
            // A deadline is a coarse expiry; validator skew of seconds does not matter here.
            // forge-lint: disable-next-line(block-timestamp)
            if (request.deadline < block.timestamp) revert RequestExpired(request.deadline, block.timestamp);
            bytes32 modelHash = request.modelHash;
            if (!_models[modelHash].active) revert ModelNotRegistered(modelHash);
            bytes32 structHash;
            (structHash, promptHash) = _requestHashes(request);
            bytes32 digest = _hashTypedDataV4(structHash);
            tokenId = uint256(digest);
            if (_ownerOf(tokenId) != address(0)) revert AlreadyMinted(tokenId);
            if (!_isCreatorSignature(request.creator, digest, job.creatorSignature)) revert BadCreatorSignature();
            nodeId = _checkOutput(digest, modelHash, output, job.nodeSignature, tab);
        }
        uint256 fee = request.fee;
        address creator = request.creator;
        // A creator that is also the tab's node spends what it has earned so far.
        if (creator == tab.node) _settle(tab);
        (Account account, uint32 creatorId) = _chargeCreator(creator, fee);
        _mint(creator, tokenId, _packTokenData(creatorId, nodeId, uint40(block.number)), Account.unwrap(account));
        tab.fees += fee;
        _metadataDigests[tokenId] = output.metadataDigest;
        _emitAigcData(tokenId, promptHash, output, job);
    }

    /// @dev Checks the node's signature over the attestation and that the node is active, and makes it
    /// the tab's node; returns its number.
    function _checkOutput(
        bytes32 digest,
        bytes32 modelHash,
        Output calldata output,
        CompactSignature calldata nodeSignature,
        NodeTab memory tab
    ) private returns (uint24) {
        address node = output.node;
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(
            _attestationDigest(digest, modelHash, output.pixelDigest, output.imageCid, output.metadataDigest, node),
            nodeSignature.r,
            nodeSignature.vs
        );
        if (error != ECDSA.RecoverError.NoError || signer != node) revert BadNodeSignature();
        if (node != tab.node) {
            Account account = _account(node);
            if (!account.isActiveNode()) revert NodeNotRegistered(node);
            _settle(tab);
            tab.node = node;
            tab.nodeId = account.nodeId();
        }
        return tab.nodeId;
    }

    /// @dev Pays the tab's fees to its node.
    function _settle(NodeTab memory tab) private {
        if (tab.fees == 0) return;
        _credit(tab.node, tab.fees);
        tab.fees = 0;
    }

    /// @dev The creator's account with `fee` taken from its funds, and its number (assigned at its first
    /// mint). The mint's events record the fee: it is a member of the request `AigcData` names.
    function _chargeCreator(address creator, uint256 fee) private returns (Account account, uint32 creatorId) {
        account = _account(creator);
        uint128 funds = account.funds();
        if (fee > funds) revert InsufficientFunds(creator, funds, fee);
        creatorId = account.creatorId();
        if (creatorId == 0) {
            if (_creatorCount == type(uint32).max) revert RegistryFull();
            creatorId = ++_creatorCount;
            _creators[creatorId] = creator;
            emit CreatorNumbered(creator, creatorId);
            account = account.withCreatorId(creatorId);
        }
        // fee <= funds < 2^128
        // forge-lint: disable-next-line(unsafe-typecast) fee <= funds, a uint128
        if (fee != 0) account = account.withFunds(funds - uint128(fee));
    }

    /// @dev Adds `amount` to `account`'s funds.
    function _credit(address account, uint256 amount) private {
        Account data = _account(account);
        uint256 funds = data.funds() + amount;
        if (funds > type(uint128).max) revert FundsOverflow(account);
        // forge-lint: disable-next-line(unsafe-typecast) checked against uint128 above
        _setAccount(account, data.withFunds(uint128(funds)));
    }

    /// @dev `AigcData(tokenId, prompt, aigcData, proof)` with the prompt's topic hashed already; the
    /// data is written straight from calldata (see `verify` for the encodings).
    function _emitAigcData(uint256 tokenId, bytes32 promptHash, Output calldata output, Job calldata job) private {
        // Calldata pointers; the accessors on the mint path have checked every value already.
        CompactSignature calldata nodeSignature = job.nodeSignature;
        bytes calldata imageCid = bytes(output.imageCid);
        bytes calldata creatorSignature = job.creatorSignature;
        bytes32 topic = AigcData.selector;
        assembly ("memory-safe") {
            // abi.encode(bytes aigcData, bytes proof) in scratch past the free memory pointer.
            let data := mload(0x40)
            let aigcLength := add(0x20, imageCid.length)
            let proofAt := add(0x60, and(add(aigcLength, 31), not(31)))
            mstore(data, 0x40)
            mstore(add(data, 0x20), proofAt)
            mstore(add(data, 0x40), aigcLength)
            mstore(add(data, 0x60), calldataload(output)) // pixel digest
            calldatacopy(add(data, 0x80), imageCid.offset, imageCid.length)
            mstore(add(add(data, 0x80), imageCid.length), 0)
            let proof := add(data, proofAt)
            let proofLength := add(0x40, creatorSignature.length)
            mstore(proof, proofLength)
            calldatacopy(add(proof, 0x20), nodeSignature, 0x40) // r, vs
            calldatacopy(add(proof, 0x60), creatorSignature.offset, creatorSignature.length)
            mstore(add(add(proof, 0x60), creatorSignature.length), 0)
            log3(data, add(add(proofAt, 0x20), and(add(proofLength, 31), not(31))), topic, tokenId, promptHash)
        }
    }

    /// @dev An ECDSA signature by `creator` (65 bytes r, s, v, or 64 bytes in the ERC-2098 compact form:
    /// an EOA, or an EIP-7702 account, signing with its key), else an ERC-1271 signature of the
    /// `creator` contract.
    function _isCreatorSignature(address creator, bytes32 digest, bytes calldata signature)
        private
        view
        returns (bool)
    {
        uint256 length = signature.length;
        if (length == 64 || length == 65) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            assembly ("memory-safe") {
                r := calldataload(signature.offset)
                s := calldataload(add(signature.offset, 0x20))
                switch length
                case 65 { v := byte(0, calldataload(add(signature.offset, 0x40))) }
                default {
                    v := add(27, shr(255, s))
                    s := and(s, 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)
                }
            }
            (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, v, r, s);
            if (error == ECDSA.RecoverError.NoError && signer == creator) return true;
        }
        return SignatureChecker.isValidERC1271SignatureNow(creator, digest, signature);
    }

    /// @dev `hashAttestation` of the attestation with these members, the metadata CID given by its digest.
    function _attestationDigest(
        bytes32 requestDigest,
        bytes32 modelHash,
        bytes32 pixelDigest,
        string calldata imageCid,
        bytes32 metadataDigest,
        address node
    ) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    ATTESTATION_TYPEHASH,
                    requestDigest,
                    modelHash,
                    pixelDigest,
                    _calldataKeccak(bytes(imageCid)),
                    RawCid.keccakOf(metadataDigest),
                    node
                )
            )
        );
    }

    /// @dev The request's EIP-712 struct hash and the hash of its canonical ABI encoding
    /// (`keccak256(abi.encode(request))`, the ERC-7007 prompt topic), from one copy of its strings.
    /// Equal to the plain Solidity expressions for every valid request (the tests compare them);
    /// this form saves about 4,000 gas per mint.
    function _requestHashes(GenerationRequest calldata request)
        private
        pure
        returns (bytes32 structHash, bytes32 encodedHash)
    {
        // The static members must fit their types, as the ABI decoder requires; Solidity's accessors
        // below check the strings' offsets and lengths against the calldata.
        assembly ("memory-safe") {
            let bad := or(shr(160, calldataload(request)), shr(64, calldataload(add(request, 0x80))))
            bad := or(bad, or(shr(32, calldataload(add(request, 0xa0))), shr(32, calldataload(add(request, 0xc0)))))
            bad := or(bad, or(shr(32, calldataload(add(request, 0xe0))), shr(32, calldataload(add(request, 0x100)))))
            if or(bad, shr(64, calldataload(add(request, 0x180)))) { revert(0, 0) }
        }
        bytes calldata prompt = bytes(request.prompt);
        bytes calldata negativePrompt = bytes(request.negativePrompt);
        bytes calldata scheduler = bytes(request.scheduler);
        // Memory: the struct encoding (type hash, 13 members) at `s`, then abi.encode(request): its
        // offset word, the 13-word head at `tuple`, the three strings.
        uint256 size = 0x420 + _padded(prompt.length) + _padded(negativePrompt.length) + _padded(scheduler.length);
        bytes32 typeHash = GENERATION_REQUEST_TYPEHASH;
        uint256 s;
        assembly ("memory-safe") {
            s := mload(0x40)
            mstore(0x40, add(s, size))
            mstore(s, typeHash)
            calldatacopy(add(s, 0x20), request, 0x1a0)
            mstore(add(s, 0x1c0), 0x20)
            calldatacopy(add(s, 0x1e0), request, 0x1a0)
        }
        uint256 tuple = s + 0x1e0;
        uint256 end = _putString(s, tuple, 0x40, 0x1a0, prompt);
        end = _putString(s, tuple, 0x60, end, negativePrompt);
        end = _putString(s, tuple, 0x120, end, scheduler);
        assembly ("memory-safe") {
            structHash := keccak256(s, 0x1c0)
            encodedHash := keccak256(add(s, 0x1c0), add(0x20, end))
        }
    }

    /// @dev Writes `text` ABI-encoded (length, bytes, zero padding) at `tuple + offset`, that offset
    /// into the head member at `tuple + member`, and the text's hash into the same member of the struct
    /// encoding at `s`; returns the offset after the text.
    function _putString(uint256 s, uint256 tuple, uint256 member, uint256 offset, bytes calldata text)
        private
        pure
        returns (uint256 next)
    {
        assembly ("memory-safe") {
            let at := add(tuple, offset)
            mstore(at, text.length)
            calldatacopy(add(at, 0x20), text.offset, text.length)
            // Zero padding; the word may reach past the allocation, where memory is scratch.
            mstore(add(add(at, 0x20), text.length), 0)
            mstore(add(tuple, member), offset)
            mstore(add(add(s, 0x20), member), keccak256(add(at, 0x20), text.length))
            next := add(add(offset, 0x20), and(add(text.length, 31), not(31)))
        }
    }

    function _calldataKeccak(bytes calldata data) private pure returns (bytes32 hash) {
        assembly ("memory-safe") {
            let scratch := mload(0x40)
            calldatacopy(scratch, data.offset, data.length)
            hash := keccak256(scratch, data.length)
        }
    }

    function _padded(uint256 length) private pure returns (uint256) {
        return 0x20 + ((length + 31) & ~uint256(31));
    }

    function _setRoyalty(uint96 bps) private {
        if (bps > MAX_ROYALTY_BPS) revert RoyaltyTooHigh(bps, MAX_ROYALTY_BPS);
        royaltyBps = bps;
        emit RoyaltyUpdated(bps);
    }

    function _account(address account) private view returns (Account) {
        return Account.wrap(_accountData(account));
    }

    function _setAccount(address account, Account data) private {
        _setAccountData(account, Account.unwrap(data));
    }

    // Token data: creator number (bits 0-31) | node number (32-55) | mint block (56-95).

    function _packTokenData(uint32 creatorId, uint24 nodeId, uint40 blockNumber) private pure returns (uint96) {
        return uint96(creatorId) | (uint96(nodeId) << 32) | (uint96(blockNumber) << 56);
    }

    function _tokenCreatorId(uint96 data) private pure returns (uint32) {
        // forge-lint: disable-next-line(unsafe-typecast) the field is 32 bits wide
        return uint32(data);
    }

    function _tokenNodeId(uint96 data) private pure returns (uint24) {
        // forge-lint: disable-next-line(unsafe-typecast) the field is 24 bits wide
        return uint24(data >> 32);
    }

    function _tokenMintBlock(uint96 data) private pure returns (uint64) {
        // forge-lint: disable-next-line(unsafe-typecast) the field is 40 bits wide
        return uint40(data >> 56);
    }
}
