// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, Vm} from "./Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "./utils/Signing.sol";

/// @notice Drives GenmintNFT with random mints, batches, replays, forgeries, deposits, withdrawals and
/// transfers among a few actors, and keeps the books the invariants compare against.
contract GenmintHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant ACTORS = 4;
    bytes32 internal constant MODEL = keccak256("invariant model");

    GenmintNFT public immutable nft;
    uint256 public nonce;

    // Minted jobs, as the AigcData event reports them.
    uint256[] public tokenIds;
    bytes[] public prompts;
    bytes[] public aigcData;
    bytes[] public proofs;
    /// abi.encode(job) of each minted job, for replays.
    bytes[] internal jobs;
    /// What each actor's funds should be.
    mapping(address => uint256) public expectedFunds;
    uint256 public deposited;
    uint256 public withdrawn;
    /// Replays and forgeries that the contract accepted (must stay zero).
    uint256 public accepted;

    constructor(GenmintNFT nft_) {
        nft = nft_;
        vm.startPrank(nft.owner());
        for (uint256 i = 0; i < ACTORS; i++) {
            nft.registerNode(actor(i));
        }
        nft.registerModel(MODEL, "invariant", "genmint", "");
        vm.stopPrank();
    }

    function actor(uint256 i) public pure returns (address) {
        return vm.addr(i % ACTORS + 1);
    }

    function minted() external view returns (uint256) {
        return tokenIds.length;
    }

    // ---------------------------------------------------------------- actions

    function deposit(uint256 who, uint256 amount) external {
        address account = actor(who);
        amount = amount % 10 ether;
        vm.deal(account, amount);
        vm.prank(account);
        nft.deposit{value: amount}();
        expectedFunds[account] += amount;
        deposited += amount;
    }

    function withdraw(uint256 who, uint256 amount) external {
        address account = actor(who);
        uint256 funds = expectedFunds[account];
        if (funds == 0) return;
        amount = amount % (funds + 1);
        vm.prank(account);
        nft.withdraw(amount);
        expectedFunds[account] -= amount;
        withdrawn += amount;
    }

    function mint(uint256 creatorSeed, uint256 nodeSeed, uint256 fee) external {
        fee %= expectedFunds[actor(creatorSeed)] + 1;
        GenmintNFT.Job memory job = _job(creatorSeed, nodeSeed, fee);
        _record(job, nft.mint(job));
    }

    function mintBatch(uint256 creatorSeed, uint256 nodeSeed, uint256 fee, uint8 size) external {
        uint256 n = size % 4 + 1;
        (creatorSeed, nodeSeed) = (creatorSeed % ACTORS, nodeSeed % ACTORS);
        GenmintNFT.Job[] memory batch = new GenmintNFT.Job[](n);
        uint256 total = 0;
        for (uint256 i = 0; i < n; i++) {
            batch[i] = _job(creatorSeed + i, nodeSeed + i / 2, fee >> i);
            if (batch[i].request.creator == batch[0].request.creator) total += batch[i].request.fee;
            else batch[i].request.fee = 0;
        }
        // Scale the first creator's fees down to its funds; re-sign the jobs whose fee changed.
        uint256 funds = expectedFunds[batch[0].request.creator];
        for (uint256 i = 0; i < n; i++) {
            if (total > funds && batch[i].request.fee != 0) batch[i].request.fee = funds / n;
            batch[i] = _resign(batch[i], creatorSeed + i, nodeSeed + i / 2);
        }
        uint256[] memory ids = nft.mintBatch(batch);
        for (uint256 i = 0; i < n; i++) {
            _record(batch[i], ids[i]);
        }
    }

    /// Mints an earlier job again: the contract must refuse.
    function replay(uint256 index) external {
        if (tokenIds.length == 0) return;
        GenmintNFT.Job memory job = abi.decode(jobs[index % tokenIds.length], (GenmintNFT.Job));
        try nft.mint(job) {
            accepted++;
        } catch {}
    }

    /// A job whose node signature is by another actor: the contract must refuse.
    function forge(uint256 creatorSeed, uint256 nodeSeed) external {
        GenmintNFT.Job memory job = _job(creatorSeed, nodeSeed, 0);
        job.output.node = actor(nodeSeed % ACTORS + 1);
        try nft.mint(job) {
            accepted++;
        } catch {}
    }

    function transfer(uint256 index, uint256 to) external {
        if (tokenIds.length == 0) return;
        uint256 tokenId = tokenIds[index % tokenIds.length];
        address owner = nft.ownerOf(tokenId);
        vm.prank(owner);
        nft.transferFrom(owner, actor(to), tokenId);
    }

    // ---------------------------------------------------------------- helpers

    function _job(uint256 creatorSeed, uint256 nodeSeed, uint256 fee) internal returns (GenmintNFT.Job memory job) {
        job.request = GenmintNFT.GenerationRequest({
            creator: actor(creatorSeed),
            modelHash: MODEL,
            prompt: "an invariant",
            negativePrompt: "",
            // forge-lint: disable-next-line(unsafe-typecast) any seed will do
            seed: uint64(nonce),
            width: 64,
            height: 64,
            steps: 4,
            guidance: 750,
            scheduler: "ddim",
            fee: fee,
            nonce: nonce++,
            deadline: uint64(block.timestamp + 1)
        });
        job.output = GenmintNFT.Output({
            pixelDigest: keccak256(abi.encode("pixels", nonce)),
            metadataDigest: keccak256(abi.encode("metadata", nonce)),
            node: actor(nodeSeed),
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta"
        });
        return _resign(job, creatorSeed, nodeSeed);
    }

    function _resign(GenmintNFT.Job memory job, uint256 creatorSeed, uint256 nodeSeed)
        internal
        view
        returns (GenmintNFT.Job memory)
    {
        // The creator's signature in its 65-byte form, the node's compact.
        job.creatorSignature = Signing.sign(creatorSeed % ACTORS + 1, nft.hashRequest(job.request));
        GenmintNFT.Attestation memory attestation = Signing.attestationOf(nft, job.request, job.output);
        job.nodeSignature = Signing.signCompact(nodeSeed % ACTORS + 1, nft.hashAttestation(attestation));
        return job;
    }

    function _record(GenmintNFT.Job memory job, uint256 tokenId) internal {
        tokenIds.push(tokenId);
        jobs.push(abi.encode(job));
        prompts.push(abi.encode(job.request));
        aigcData.push(abi.encodePacked(job.output.pixelDigest, job.output.imageCid));
        proofs.push(abi.encodePacked(job.nodeSignature.r, job.nodeSignature.vs, job.creatorSignature));
        expectedFunds[job.request.creator] -= job.request.fee;
        expectedFunds[job.output.node] += job.request.fee;
    }
}

/// @notice Invariants of GenmintNFT under random use: every token has a record whose signatures
/// verify; deposits, fees and withdrawals are conserved; a request digest is minted at most once.
contract InvariantsTest is Test {
    GenmintNFT internal nft;
    GenmintHandler internal handler;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    function setUp() public {
        vm.warp(1_767_225_600);
        nft = new GenmintNFT(address(this), 500);
        handler = new GenmintHandler(nft);
        nft.transferOwnership(address(handler));
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function invariant_EveryTokenHasARecordWhoseSignaturesVerify() public view {
        for (uint256 i = 0; i < handler.minted(); i++) {
            uint256 tokenId = handler.tokenIds(i);
            bytes memory prompt = handler.prompts(i);
            assertEq(tokenId, uint256(nft.hashRequest(abi.decode(prompt, (GenmintNFT.GenerationRequest)))), "id");
            assertTrue(nft.verify(prompt, handler.aigcData(i), handler.proofs(i)), "verify");
            GenmintNFT.Record memory record = nft.provenance(tokenId);
            assertTrue(record.creator != address(0) && record.node != address(0), "record");
        }
    }

    function invariant_FundsAreConserved() public view {
        uint256 total = 0;
        for (uint256 i = 0; i < 4; i++) {
            address account = handler.actor(i);
            assertEq(nft.fundsOf(account), handler.expectedFunds(account), "each account's funds");
            total += nft.fundsOf(account);
        }
        assertEq(address(nft).balance, total, "the contract holds exactly the funds");
        assertEq(address(nft).balance, handler.deposited() - handler.withdrawn(), "deposits minus withdrawals");
    }

    function invariant_EachRequestMintsAtMostOnce() public view {
        assertEq(handler.accepted(), 0, "no replay or forgery was accepted");
        uint256 held = 0;
        for (uint256 i = 0; i < 4; i++) {
            held += nft.balanceOf(handler.actor(i));
        }
        assertEq(held, handler.minted(), "one token per recorded mint");
    }
}
