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

    /// @dev A registered model; `active` first so a mint reads one word, which also holds the bond.
    struct Model {
        bool active;
        /// the account that bonded the model (`bondModel`); zero for an owner-registered one
        address bonder;
        /// wei the bonder locked; returned when it retires the model, forfeited if the owner takes the
        /// model down
        uint80 bond;
        /// whether the model was ever registered: a bond cannot claim a hash the owner took down
        bool registered;
        string name;
        string author;
        string licenseUri;
    }

    /// @notice A node operator's stake (one word). A node is a member while it is not barred and is
    /// curated by the owner or has at least `NODE_STAKE` staked.
    struct Stake {
        /// wei locked as surety; slashed on a confirmed fraud
        uint88 staked;
        /// wei asked back, still slashable, paid out by `withdrawStake` from `unlockAt`
        uint88 unstaking;
        /// unix seconds from which `unstaking` may be withdrawn; 0 when nothing is asked back
        uint40 unlockAt;
        /// disputes open against the node; a withdrawal waits until none is
        uint16 openDisputes;
        /// registered by the owner (a member without stake)
        bool curated;
        /// slashed, or taken down by the owner: staking does not make it a member again
        bool barred;
    }

    /// @notice Where a dispute over a token stands.
    enum DisputeStatus {
        None,
        /// re-checkers may vote until the deadline
        Open,
        /// a quorum re-derived the challenger's digest: the node was slashed and the token is marked forged
        Fraud,
        /// a quorum re-derived the node's digest: the challenger's bond went to the node and was burned
        Rejected
    }

    /// @notice A dispute over a token (one word; its evidence is in the `DisputeOpened` event and its
    /// hash in a second word while it is open).
    struct Dispute {
        address challenger;
        /// unix seconds; votes are taken before it, resolution from it
        uint40 deadline;
        /// votes of independent re-checkers that re-derived the challenger's digest
        uint16 confirmations;
        /// votes that re-derived the digest the node attested
        uint16 rejections;
        DisputeStatus status;
        /// how many disputes over the token ended without a quorum (each round's votes are its own)
        uint16 round;
    }

    /// @notice What a dispute is about, as `openDispute` logged it: the prompt topic of the token's
    /// `AigcData`, the pixel digest the node attested and the one the challenger re-derived.
    struct Evidence {
        bytes32 promptHash;
        bytes32 attestedDigest;
        bytes32 recheckedDigest;
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
    /// @notice The stake that makes an operator a node without the owner.
    uint256 public constant NODE_STAKE = 0.1 ether;
    /// @notice The bond an author locks to register a model without the owner.
    uint256 public constant MODEL_BOND = 0.05 ether;
    /// @notice The bond a challenger locks to open a dispute.
    uint256 public constant DISPUTE_BOND = 0.01 ether;
    /// @notice How long unstaked wei stays locked (and slashable) before it can be withdrawn.
    uint256 public constant UNSTAKE_DELAY = 7 days;
    /// @notice How long re-checkers may vote on a dispute.
    uint256 public constant DISPUTE_WINDOW = 2 days;
    /// @notice Votes of independent re-checkers a dispute needs to be decided either way.
    uint256 public constant DISPUTE_QUORUM = 2;
    /// @notice The part of a slashed stake (or of a rejected challenger's bond) paid to the winning side,
    /// in basis points; the rest is burned (locked in the contract for good).
    uint256 public constant WINNER_SHARE_BPS = 5000;

    mapping(uint256 tokenId => bytes32 digest) private _metadataDigests;
    mapping(bytes32 modelHash => Model) private _models;
    mapping(uint32 creatorId => address creator) private _creators;
    mapping(uint24 nodeId => address operator) private _nodes;
    uint32 private _creatorCount;
    uint24 private _nodeCount;
    /// @notice Royalty rate paid to a token's creator, in basis points.
    uint96 public royaltyBps;
    /// @notice Wei slashed or forfeited and not paid to anyone: locked in the contract for good.
    uint256 public burned;
    mapping(address operator => Stake) private _stakes;
    mapping(uint256 tokenId => Dispute) private _disputes;
    mapping(uint256 tokenId => bytes32 evidenceHash) private _evidenceHashes;
    /// One bit per node number: whether that node voted on the token's open dispute.
    mapping(uint256 tokenId => mapping(uint256 word => uint256 bits)) private _votes;

    event NodeRegistered(address indexed operator, uint24 nodeId);
    event NodeDeactivated(address indexed operator);
    event ModelRegistered(bytes32 indexed modelHash, string name, string author, string licenseUri);
    event ModelDeactivated(bytes32 indexed modelHash);
    event CreatorNumbered(address indexed creator, uint32 creatorId);
    event Deposited(address indexed account, address indexed from, uint256 amount);
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    event RoyaltyUpdated(uint96 bps);
    event Staked(address indexed operator, uint256 amount, uint256 staked);
    event UnstakeRequested(address indexed operator, uint256 amount, uint256 unstaking, uint64 unlockAt);
    event StakeWithdrawn(address indexed operator, uint256 amount);
    event ModelBonded(bytes32 indexed modelHash, address indexed bonder, uint256 bond);
    event ModelRetired(bytes32 indexed modelHash, address indexed bonder, uint256 bondReturned);
    /// @notice A challenger re-derived a different image for a token than its node attested.
    event DisputeOpened(
        uint256 indexed tokenId,
        address indexed node,
        address indexed challenger,
        bytes32 promptHash,
        bytes32 attestedDigest,
        bytes32 recheckedDigest,
        uint64 deadline
    );
    /// @notice A re-checker's digest for a disputed token; `side` is 1 when it is the challenger's, 2 when
    /// it is the node's, 0 when it is neither.
    event DisputeVoted(uint256 indexed tokenId, address indexed voter, bytes32 digest, uint8 side);
    /// @notice How a dispute ended; `status` None means no quorum (bond returned, the token may be
    /// disputed again).
    event DisputeResolved(uint256 indexed tokenId, DisputeStatus status, uint16 confirmations, uint16 rejections);
    /// @notice A node's stake taken for a confirmed fraud: `reward` to the challenger, the rest burned.
    event Slashed(address indexed node, uint256 indexed tokenId, uint256 amount, uint256 reward);
    /// @notice ERC-7007's updatable extension: `tokenId`'s AIGC data changed. A token whose fraud was
    /// confirmed announces `aigcData` = the 32-byte pixel digest the re-checkers derived.
    event Update(uint256 indexed tokenId, bytes indexed prompt, bytes indexed aigcData);

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
    error WrongAmount(uint256 sent, uint256 expected);
    error StakeLocked(uint64 unlockAt, uint16 openDisputes);
    error ModelTaken(bytes32 modelHash);
    error NotBonder(bytes32 modelHash, address bonder);
    error NotAMismatch(bytes32 digest);
    error DisputeExists(uint256 tokenId, DisputeStatus status);
    error NoOpenDispute(uint256 tokenId);
    error EvidenceMismatch(uint256 tokenId);
    error NotAVoter(address account);
    error AlreadyVoted(uint256 tokenId, address voter);
    error WindowClosed(uint256 tokenId, uint64 deadline);
    error WindowOpen(uint256 tokenId, uint64 deadline);

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

    /// @notice Allows `operator` to attest generations without stake (curated), or re-activates it,
    /// lifting a bar. Only the owner.
    function registerNode(address operator) external onlyOwner {
        Stake storage stake_ = _stakes[operator];
        stake_.curated = true;
        stake_.barred = false;
        _activateNode(operator);
    }

    /// @notice Stops `operator` from attesting new generations, and bars it from rejoining by stake;
    /// minted tokens keep it and its stake stays withdrawable. Only the owner. Tells marketplaces to
    /// refresh (ERC-4906): a token's provenance check reports registry status.
    function deactivateNode(address operator) external onlyOwner {
        if (!_account(operator).isActiveNode()) revert NodeNotRegistered(operator);
        Stake storage stake_ = _stakes[operator];
        stake_.curated = false;
        stake_.barred = true;
        _deactivateNode(operator);
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
        _setModel(modelHash, name_, author, licenseUri);
    }

    /// @notice Stops new mints with a model; its entry stays readable. A bonded model's bond is
    /// forfeited (burned): the owner takes down a model whose manifest or licence is false. Only the owner.
    function deactivateModel(bytes32 modelHash) external onlyOwner {
        Model storage model = _models[modelHash];
        if (!model.active) revert ModelNotRegistered(modelHash);
        burned += model.bond;
        model.bond = 0;
        _retireModel(modelHash, model);
    }

    /// @notice Registers a model without the owner, by locking `MODEL_BOND` (sent with the call) until
    /// the sender retires it. Reverts with `ModelTaken` if the hash was ever registered.
    /// @param modelHash sha256 of the model's canonical manifest.
    function bondModel(bytes32 modelHash, string calldata name_, string calldata author, string calldata licenseUri)
        external
        payable
    {
        if (msg.value != MODEL_BOND) revert WrongAmount(msg.value, MODEL_BOND);
        Model storage model = _models[modelHash];
        if (model.registered) revert ModelTaken(modelHash);
        model.bonder = msg.sender;
        // forge-lint: disable-next-line(unsafe-typecast) the constant bond fits 80 bits
        model.bond = uint80(MODEL_BOND);
        _setModel(modelHash, name_, author, licenseUri);
        emit ModelBonded(modelHash, msg.sender, MODEL_BOND);
    }

    /// @notice Stops new mints with a model the sender bonded and returns its bond to the sender's funds.
    function retireModel(bytes32 modelHash) external {
        Model storage model = _models[modelHash];
        if (model.bonder != msg.sender) revert NotBonder(modelHash, model.bonder);
        if (!model.active) revert ModelNotRegistered(modelHash);
        uint256 bond = model.bond;
        model.bond = 0;
        _credit(msg.sender, bond);
        emit ModelRetired(modelHash, msg.sender, bond);
        _retireModel(modelHash, model);
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

    // ---------------------------------------------------------------- membership by stake

    /// @notice Adds the ETH sent to the sender's stake; with at least `NODE_STAKE` staked (and not
    /// barred) the sender becomes a node, as `registerNode` would make it.
    function stake() external payable {
        Stake storage stake_ = _stakes[msg.sender];
        uint256 staked = stake_.staked + msg.value;
        if (staked > type(uint88).max) revert FundsOverflow(msg.sender);
        // forge-lint: disable-next-line(unsafe-typecast) checked against uint88 above
        stake_.staked = uint88(staked);
        emit Staked(msg.sender, msg.value, staked);
        if (staked >= NODE_STAKE && !stake_.barred && !_account(msg.sender).isActiveNode()) {
            _activateNode(msg.sender);
        }
    }

    /// @notice Asks `amount` of the sender's stake back: it stays locked, and slashable, for
    /// `UNSTAKE_DELAY` (every request restarts the delay for all of it), then `withdrawStake` pays it.
    /// A node left with less than `NODE_STAKE`, and not curated, stops being a node at once.
    function requestUnstake(uint256 amount) external {
        Stake storage stake_ = _stakes[msg.sender];
        uint256 staked = stake_.staked;
        if (amount > staked) revert InsufficientFunds(msg.sender, staked, amount);
        // forge-lint: disable-next-line(unsafe-typecast) amount <= staked, a uint88
        uint88 left = uint88(staked - amount);
        uint256 unstakingSum = stake_.unstaking + amount;
        if (unstakingSum > type(uint88).max) revert FundsOverflow(msg.sender);
        // forge-lint: disable-next-line(unsafe-typecast) checked against uint88 above
        uint88 unstaking = uint88(unstakingSum);
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds fit 40 bits for 34,000 years
        uint40 unlockAt = uint40(block.timestamp + UNSTAKE_DELAY);
        stake_.staked = left;
        stake_.unstaking = unstaking;
        stake_.unlockAt = unlockAt;
        emit UnstakeRequested(msg.sender, amount, unstaking, unlockAt);
        if (left < NODE_STAKE && !stake_.curated && _account(msg.sender).isActiveNode()) {
            _deactivateNode(msg.sender);
        }
    }

    /// @notice Sends the sender's unstaked wei to it once `UNSTAKE_DELAY` has passed and no dispute
    /// against it is open.
    function withdrawStake() external {
        Stake storage stake_ = _stakes[msg.sender];
        uint40 unlockAt = stake_.unlockAt;
        uint16 openDisputes = stake_.openDisputes;
        // forge-lint: disable-next-line(block-timestamp) a delay of days; seconds of skew do not matter
        if (unlockAt == 0 || block.timestamp < unlockAt || openDisputes != 0) {
            revert StakeLocked(unlockAt, openDisputes);
        }
        uint256 amount = stake_.unstaking;
        stake_.unstaking = 0;
        stake_.unlockAt = 0;
        emit StakeWithdrawn(msg.sender, amount);
        (bool sent,) = payable(msg.sender).call{value: amount}("");
        if (!sent) revert PaymentFailed(msg.sender, amount);
    }

    /// @notice An operator's stake, unstaking wei, unlock time, open disputes and standing.
    function stakeOf(address operator) external view returns (Stake memory) {
        return _stakes[operator];
    }

    // ---------------------------------------------------------------- disputes

    /// @notice Disputes a minted token: the sender re-generated its request and derived a different
    /// image. The sender posts the request and the outputs the node signed (checked against the token:
    /// the request hashes to its id and the node's signature covers `attestedDigest` with the token's
    /// metadata CID) with its own digest and `DISPUTE_BOND`. For `DISPUTE_WINDOW` other nodes re-check
    /// and `vote`; then anyone may `resolveDispute`.
    /// @param request The token's generation request.
    /// @param attestedDigest The pixel digest the node attested (the token's `AigcData`).
    /// @param imageCid The image CID the node attested.
    /// @param nodeSignature The node's attestation signature (from the token's `AigcData` proof).
    /// @param recheckedDigest The pixel digest the sender derived.
    function openDispute(
        GenerationRequest calldata request,
        bytes32 attestedDigest,
        string calldata imageCid,
        CompactSignature calldata nodeSignature,
        bytes32 recheckedDigest
    ) external payable {
        if (msg.value != DISPUTE_BOND) revert WrongAmount(msg.value, DISPUTE_BOND);
        if (recheckedDigest == attestedDigest) revert NotAMismatch(recheckedDigest);
        (uint256 tokenId, bytes32 promptHash, address node) =
            _attestedToken(request, attestedDigest, imageCid, nodeSignature);
        DisputeStatus status = _disputes[tokenId].status;
        if (status != DisputeStatus.None) revert DisputeExists(tokenId, status);
        if (msg.sender == node) revert NotAVoter(msg.sender);
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds fit 40 bits for 34,000 years
        uint40 deadline = uint40(block.timestamp + DISPUTE_WINDOW);
        Dispute storage dispute = _disputes[tokenId];
        dispute.challenger = msg.sender;
        dispute.deadline = deadline;
        dispute.status = DisputeStatus.Open;
        _evidenceHashes[tokenId] = keccak256(abi.encode(promptHash, attestedDigest, recheckedDigest));
        _stakes[node].openDisputes++;
        emit DisputeOpened(tokenId, node, msg.sender, promptHash, attestedDigest, recheckedDigest, deadline);
    }

    /// @notice A re-checker's vote on an open dispute: the pixel digest it derived by re-generating the
    /// token's request. Only active nodes other than the token's node and the challenger, once each,
    /// before the deadline.
    /// @param evidence The dispute's evidence, as `DisputeOpened` logged it.
    function vote(uint256 tokenId, Evidence calldata evidence, bytes32 digest) external {
        Dispute storage dispute = _openDispute(tokenId, evidence);
        uint40 deadline = dispute.deadline;
        // forge-lint: disable-next-line(block-timestamp) a window of days; seconds of skew do not matter
        if (block.timestamp >= deadline) revert WindowClosed(tokenId, deadline);
        Account account = _account(msg.sender);
        uint24 voterId = account.nodeId();
        if (!account.isActiveNode() || voterId == _tokenNodeId(_tokenData(tokenId)) || msg.sender == dispute.challenger)
        {
            revert NotAVoter(msg.sender);
        }
        mapping(uint256 => uint256) storage votes = _votes[tokenId];
        uint256 word = (uint256(dispute.round) << 16) | (voterId >> 8);
        uint256 bit = uint256(1) << (voterId & 0xff);
        uint256 bits = votes[word];
        if (bits & bit != 0) revert AlreadyVoted(tokenId, msg.sender);
        votes[word] = bits | bit;
        uint8 side;
        if (digest == evidence.recheckedDigest) {
            side = 1;
            dispute.confirmations++;
        } else if (digest == evidence.attestedDigest) {
            side = 2;
            dispute.rejections++;
        }
        emit DisputeVoted(tokenId, msg.sender, digest, side);
    }

    /// @notice Ends a dispute once its window has passed; anyone may call. Fraud is confirmed when at
    /// least `DISPUTE_QUORUM` re-checkers derived the challenger's digest and more did so than derived
    /// the node's: the node's whole stake (unstaking wei included) is slashed, `WINNER_SHARE_BPS` of it
    /// to the challenger's funds with its bond, the rest burned; the node is barred and deactivated; the
    /// token is marked (`Update` with the re-derived digest, `MetadataUpdate`). The challenge is
    /// rejected when the same holds for the node's digest: its bond is split between the node's funds
    /// and the burn. Otherwise (no quorum) the bond returns to the challenger's funds and the token may
    /// be disputed again.
    /// @param evidence The dispute's evidence, as `DisputeOpened` logged it.
    function resolveDispute(uint256 tokenId, Evidence calldata evidence) external {
        Dispute storage dispute = _openDispute(tokenId, evidence);
        Dispute memory d = dispute;
        // forge-lint: disable-next-line(block-timestamp) a window of days; seconds of skew do not matter
        if (block.timestamp < d.deadline) revert WindowOpen(tokenId, d.deadline);
        address node = _nodes[_tokenNodeId(_tokenData(tokenId))];
        Stake storage accused = _stakes[node];
        accused.openDisputes--;
        delete _evidenceHashes[tokenId];
        DisputeStatus outcome = DisputeStatus.None;
        if (d.confirmations >= DISPUTE_QUORUM && d.confirmations > d.rejections) {
            outcome = DisputeStatus.Fraud;
            uint256 amount = uint256(accused.staked) + accused.unstaking;
            uint256 reward = amount * WINNER_SHARE_BPS / 10_000;
            accused.staked = 0;
            accused.unstaking = 0;
            accused.unlockAt = 0;
            accused.curated = false;
            accused.barred = true;
            burned += amount - reward;
            _credit(d.challenger, reward + DISPUTE_BOND);
            emit Slashed(node, tokenId, amount, reward);
            if (_account(node).isActiveNode()) _deactivateNode(node);
            bytes memory aigcData = abi.encodePacked(evidence.recheckedDigest);
            bytes32 promptTopic = evidence.promptHash;
            bytes32 topic = Update.selector;
            assembly ("memory-safe") {
                log4(0, 0, topic, tokenId, promptTopic, keccak256(add(aigcData, 0x20), 0x20))
            }
            emit MetadataUpdate(tokenId);
        } else if (d.rejections >= DISPUTE_QUORUM && d.rejections > d.confirmations) {
            outcome = DisputeStatus.Rejected;
            uint256 share = DISPUTE_BOND * WINNER_SHARE_BPS / 10_000;
            burned += DISPUTE_BOND - share;
            _credit(node, share);
        } else {
            _credit(d.challenger, DISPUTE_BOND);
        }
        if (outcome == DisputeStatus.None) {
            // A fresh round: the token may be disputed again, its voters vote afresh.
            _disputes[tokenId] = Dispute({
                challenger: address(0),
                deadline: 0,
                confirmations: 0,
                rejections: 0,
                status: DisputeStatus.None,
                round: d.round + 1
            });
        } else {
            dispute.status = outcome;
        }
        emit DisputeResolved(tokenId, outcome, d.confirmations, d.rejections);
    }

    /// @notice A token's dispute: challenger, deadline, tallies and status (`Fraud` marks a forged token).
    function disputeOf(uint256 tokenId) external view returns (Dispute memory) {
        return _disputes[tokenId];
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

    /// @dev Numbers `operator` if it has no number yet and makes it an active node.
    function _activateNode(address operator) private {
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

    /// @dev Makes `operator` inactive; its tokens keep it (ERC-4906 refresh: their provenance changes).
    function _deactivateNode(address operator) private {
        Account account = _account(operator);
        _setAccount(operator, account.withNode(account.nodeId(), false));
        emit NodeDeactivated(operator);
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    /// @dev Writes a model's description and activates it, keeping its bond.
    function _setModel(bytes32 modelHash, string calldata name_, string calldata author, string calldata licenseUri)
        private
    {
        Model storage model = _models[modelHash];
        model.active = true;
        model.registered = true;
        model.name = name_;
        model.author = author;
        model.licenseUri = licenseUri;
        emit ModelRegistered(modelHash, name_, author, licenseUri);
    }

    function _retireModel(bytes32 modelHash, Model storage model) private {
        model.active = false;
        emit ModelDeactivated(modelHash);
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    /// @dev The minted token of `request`, its prompt topic and its node, after checking that the node
    /// signed the attestation of `pixelDigest` and `imageCid` with the token's metadata CID.
    function _attestedToken(
        GenerationRequest calldata request,
        bytes32 pixelDigest,
        string calldata imageCid,
        CompactSignature calldata nodeSignature
    ) private view returns (uint256 tokenId, bytes32 promptHash, address node) {
        bytes32 structHash;
        (structHash, promptHash) = _requestHashes(request);
        bytes32 digest = _hashTypedDataV4(structHash);
        tokenId = uint256(digest);
        _requireOwned(tokenId);
        node = _nodes[_tokenNodeId(_tokenData(tokenId))];
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(
            _attestationDigest(digest, request.modelHash, pixelDigest, imageCid, _metadataDigests[tokenId], node),
            nodeSignature.r,
            nodeSignature.vs
        );
        if (error != ECDSA.RecoverError.NoError || signer != node) revert BadNodeSignature();
    }

    /// @dev The token's open dispute, after checking `evidence` against the hash `openDispute` stored.
    function _openDispute(uint256 tokenId, Evidence calldata evidence) private view returns (Dispute storage dispute) {
        dispute = _disputes[tokenId];
        if (dispute.status != DisputeStatus.Open) revert NoOpenDispute(tokenId);
        if (
            _evidenceHashes[tokenId]
                != keccak256(abi.encode(evidence.promptHash, evidence.attestedDigest, evidence.recheckedDigest))
        ) revert EvidenceMismatch(tokenId);
    }

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
