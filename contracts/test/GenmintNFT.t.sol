// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";
import {GenmintFixture} from "./utils/GenmintFixture.sol";
import {Signing} from "./utils/Signing.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {RawCid} from "../src/RawCid.sol";
import {IERC7007} from "../src/interfaces/IERC7007.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

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

/// @notice An account that refuses ETH.
contract Refuser {
    receive() external payable {
        revert("no");
    }
}

/// @notice Withdraws its funds and, when paid, tries to withdraw again before its balance is known.
contract Reentrant {
    GenmintNFT internal immutable nft;
    uint256 public reentries;
    bool public reentryFailed;

    constructor(GenmintNFT nft_) {
        nft = nft_;
    }

    function fund() external payable {
        nft.deposit{value: msg.value}();
    }

    function drain(uint256 amount) external {
        nft.withdraw(amount);
    }

    receive() external payable {
        if (reentries++ == 0) {
            try nft.withdraw(msg.value) {}
            catch {
                reentryFailed = true;
            }
        }
    }
}

/// @notice Mint paths, ERC-7007/2981/4906 surfaces, funds, registries and ownership of GenmintNFT,
/// including every rejection.
contract GenmintNFTTest is GenmintFixture {
    bytes32 internal constant AIGC_DATA_TOPIC = keccak256("AigcData(uint256,bytes,bytes,bytes)");

    // ---------------------------------------------------------------- happy path

    function test_MintRecordsTheTokenAndPaysTheNode() public {
        GenmintNFT.Job memory job = _job(1);
        uint256 expectedId = uint256(nft.hashRequest(job.request));

        vm.recordLogs();
        vm.prank(stranger); // anyone may submit
        uint256 tokenId = nft.mint(job);

        assertEq(tokenId, expectedId, "token id is the request digest");
        assertEq(nft.ownerOf(tokenId), creator, "owner");
        assertEq(nft.balanceOf(creator), 1, "creator balance");
        assertEq(
            nft.tokenURI(tokenId), string.concat("ipfs://", RawCid.fromSha256(job.output.metadataDigest)), "tokenURI"
        );
        GenmintNFT.Record memory record = nft.provenance(tokenId);
        assertEq(record.creator, creator, "provenance.creator");
        assertEq(record.node, node, "provenance.node");
        assertEq(record.mintBlock, BLOCK, "provenance.mintBlock");
        assertEq(record.metadataCid, RawCid.fromSha256(job.output.metadataDigest), "provenance.metadataCid");
        assertEq(nft.fundsOf(creator), DEPOSIT - FEE, "creator paid the fee");
        assertEq(nft.fundsOf(node), FEE, "node earned the fee");

        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 3, "CreatorNumbered, Transfer, AigcData");
        Vm.Log memory aigc = logs[2];
        assertEq(aigc.topics[0], AIGC_DATA_TOPIC, "AigcData topic");
        assertEq(uint256(aigc.topics[1]), tokenId, "AigcData tokenId");
        assertEq(aigc.topics[2], keccak256(_prompt(job)), "AigcData prompt is the encoded request");
        (bytes memory aigcData, bytes memory proof) = abi.decode(aigc.data, (bytes, bytes));
        assertEq(aigcData, _aigcData(job), "aigcData");
        assertEq(proof, _proof(job), "proof");
        assertTrue(nft.verify(_prompt(job), aigcData, proof), "the event's data verifies");
    }

    function test_MintWithoutFeeNeedsNoDeposit() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.fee = 0;
        request.creator = stranger;
        uint256 tokenId = nft.mint(_job(request, _output(1), STRANGER_KEY, NODE_KEY));
        assertEq(nft.ownerOf(tokenId), stranger, "owner");
        assertEq(nft.fundsOf(node), 0, "no fee");
    }

    function test_MintChargesTheExactSignedFee() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.fee = DEPOSIT;
        nft.mint(_job(request, _output(1), CREATOR_KEY, NODE_KEY));
        assertEq(nft.fundsOf(creator), 0, "the whole deposit");
        assertEq(nft.fundsOf(node), DEPOSIT, "to the node");
    }

    function test_MintNumbersEachCreatorOnce() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.CreatorNumbered(creator, 1);
        uint256 first = nft.mint(_job(1));
        uint256 second = nft.mint(_job(2));
        (address receiver,) = nft.royaltyInfo(first, 1 ether);
        (address receiver2,) = nft.royaltyInfo(second, 1 ether);
        assertEq(receiver, creator, "first token's creator");
        assertEq(receiver2, creator, "second token's creator");
        assertEq(nft.balanceOf(creator), 2, "balance");
    }

    function test_MintAcceptsCreatorSignatureOf65Bytes() public {
        GenmintNFT.Job memory job = _job(1);
        job.creatorSignature = Signing.sign(CREATOR_KEY, nft.hashRequest(job.request));
        assertEq(job.creatorSignature.length, 65, "long form");
        uint256 tokenId = nft.mint(job);
        assertEq(nft.ownerOf(tokenId), creator, "owner");
        assertTrue(nft.verify(_prompt(job), _aigcData(job), _proof(job)), "verify takes the long form too");
    }

    function test_MintAcceptsDeadlineEqualToNow() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.deadline = NOW;
        uint256 tokenId = nft.mint(_job(request, _output(1), CREATOR_KEY, NODE_KEY));
        assertEq(nft.ownerOf(tokenId), creator, "owner");
    }

    function test_MintAcceptsContractWalletCreator() public {
        DigestWallet wallet = new DigestWallet();
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.creator = address(wallet);
        request.fee = 0;
        GenmintNFT.Job memory job = _job(request, _output(1), STRANGER_KEY, NODE_KEY);
        job.creatorSignature = "wallet-specific proof";
        wallet.approve(nft.hashRequest(request));

        uint256 tokenId = nft.mint(job);
        assertEq(nft.ownerOf(tokenId), address(wallet), "contract wallet owns the token");
        assertEq(nft.provenance(tokenId).creator, address(wallet), "provenance.creator");
        assertTrue(nft.verify(_prompt(job), _aigcData(job), _proof(job)), "verify asks the wallet");
        wallet.approve(bytes32(0));
        assertTrue(!nft.verify(_prompt(job), _aigcData(job), _proof(job)), "a revoked wallet signature");
    }

    function test_MintWhereTheCreatorIsTheNode() public {
        vm.deal(node, 1 ether);
        vm.prank(node);
        nft.deposit{value: FEE}();
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.creator = node;
        nft.mint(_job(request, _output(1), NODE_KEY, NODE_KEY));
        assertEq(nft.fundsOf(node), FEE, "paid itself");
        assertEq(address(nft).balance, DEPOSIT + FEE, "nothing created or lost");
    }

    function test_ProvenanceAndRoyaltySurviveTransfer() public {
        uint256 tokenId = nft.mint(_job(1));
        vm.prank(creator);
        nft.transferFrom(creator, stranger, tokenId);
        assertEq(nft.ownerOf(tokenId), stranger, "new owner");
        assertEq(nft.provenance(tokenId).creator, creator, "provenance.creator unchanged");
        assertEq(nft.provenance(tokenId).node, node, "provenance.node unchanged");
        (address receiver, uint256 amount) = nft.royaltyInfo(tokenId, 2 ether);
        assertEq(receiver, creator, "royalties still go to the creator");
        assertEq(amount, 0.1 ether, "5% of the price");
    }

    // ---------------------------------------------------------------- batch

    function test_MintBatchMintsEveryJobAndPaysOnce() public {
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](3);
        for (uint256 i = 0; i < 3; i++) {
            jobs[i] = _job(i + 1);
        }
        vm.prank(node);
        uint256[] memory tokenIds = nft.mintBatch(jobs);
        for (uint256 i = 0; i < 3; i++) {
            assertEq(tokenIds[i], uint256(nft.hashRequest(jobs[i].request)), "token id");
            assertEq(nft.ownerOf(tokenIds[i]), creator, "owner");
            assertTrue(nft.verify(_prompt(jobs[i]), _aigcData(jobs[i]), _proof(jobs[i])), "verifies");
        }
        assertEq(nft.fundsOf(node), 3 * FEE, "the node earned three fees");
        assertEq(nft.fundsOf(creator), DEPOSIT - 3 * FEE, "the creator paid three");
    }

    function test_MintBatchPaysEachNodeItsOwnFees() public {
        uint256 otherKey = 0xb0b;
        address other = vm.addr(otherKey);
        vm.prank(owner);
        nft.registerNode(other);
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](3);
        jobs[0] = _job(1);
        GenmintNFT.Output memory output = _output(2);
        output.node = other;
        jobs[1] = _job(_request(2), output, CREATOR_KEY, otherKey);
        jobs[2] = _job(3);
        uint256[] memory tokenIds = nft.mintBatch(jobs);
        assertEq(nft.fundsOf(node), 2 * FEE, "first node");
        assertEq(nft.fundsOf(other), FEE, "second node");
        assertEq(nft.provenance(tokenIds[1]).node, other, "the second job's node");
        assertEq(nft.provenance(tokenIds[2]).node, node, "the third job's node");
    }

    function test_MintBatchLetsANodeSpendWhatItEarnedEarlierInTheBatch() public {
        // The node earns one fee from the creator, then pays it for its own request.
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](2);
        jobs[0] = _job(1);
        GenmintNFT.GenerationRequest memory own = _request(2);
        own.creator = node;
        jobs[1] = _job(own, _output(2), NODE_KEY, NODE_KEY);
        nft.mintBatch(jobs);
        assertEq(nft.fundsOf(node), FEE, "earned FEE, spent FEE, earned FEE");
        assertEq(nft.balanceOf(node), 1, "the node's own token");
    }

    function test_RevertWhen_BatchHasABadJob() public {
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](2);
        jobs[0] = _job(1);
        jobs[1] = _job(2);
        jobs[1].request.seed = 7; // no longer what the creator signed
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mintBatch(jobs);
        assertEq(nft.balanceOf(creator), 0, "all or none");
    }

    function test_RevertWhen_BatchRepeatsAJob() public {
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](2);
        jobs[0] = _job(1);
        jobs[1] = jobs[0];
        vm.expectRevert(
            abi.encodeWithSelector(GenmintNFT.AlreadyMinted.selector, uint256(nft.hashRequest(jobs[0].request)))
        );
        nft.mintBatch(jobs);
    }

    function test_RevertWhen_BatchIsEmptyOrTooLarge() public {
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.BatchSize.selector, 0, 100));
        nft.mintBatch(new GenmintNFT.Job[](0));
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.BatchSize.selector, 101, 100));
        nft.mintBatch(new GenmintNFT.Job[](101));
    }

    // ---------------------------------------------------------------- mint rejections

    function test_RevertWhen_CreatorSignedByOtherKey() public {
        GenmintNFT.Job memory job = _job(_request(1), _output(1), STRANGER_KEY, NODE_KEY);
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_RequestChangedAfterSigning() public {
        GenmintNFT.Job memory job = _job(1);
        job.request.prompt = "a different prompt";
        // The node signed the old request digest, but the creator check comes first.
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_CreatorSignatureMalformed() public {
        GenmintNFT.Job memory job = _job(1);
        job.creatorSignature = hex"1234";
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(job);
        // A high-s (malleable) twin of a valid signature is refused too.
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(CREATOR_KEY, nft.hashRequest(job.request));
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        job.creatorSignature = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_ContractWalletRefuses() public {
        DigestWallet wallet = new DigestWallet();
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.creator = address(wallet);
        GenmintNFT.Job memory job = _job(request, _output(1), STRANGER_KEY, NODE_KEY);
        vm.expectRevert(GenmintNFT.BadCreatorSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_NodeSignedByOtherKey() public {
        GenmintNFT.Job memory job = _job(_request(1), _output(1), CREATOR_KEY, STRANGER_KEY);
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_OutputChangedAfterSigning() public {
        GenmintNFT.Job memory job = _job(1);
        job.output.pixelDigest = keccak256("other pixels");
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(job);
        job = _job(1);
        job.output.imageCid = "bafkreiother";
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(job);
        job = _job(1);
        job.output.metadataDigest = keccak256("other metadata");
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_AttestationForAnotherModel() public {
        bytes32 otherModel = keccak256("other model");
        vm.prank(owner);
        nft.registerModel(otherModel, "other", "someone", "");
        GenmintNFT.GenerationRequest memory request = _request(1);
        GenmintNFT.Job memory job = _job(request, _output(1), CREATOR_KEY, NODE_KEY);
        GenmintNFT.Attestation memory attestation = Signing.attestationOf(nft, request, job.output);
        attestation.modelHash = otherModel;
        job.nodeSignature = Signing.signCompact(NODE_KEY, nft.hashAttestation(attestation));
        vm.expectRevert(GenmintNFT.BadNodeSignature.selector);
        nft.mint(job);
    }

    function test_RevertWhen_NodeNotRegistered() public {
        GenmintNFT.Output memory output = _output(1);
        output.node = stranger;
        GenmintNFT.Job memory job = _job(_request(1), output, CREATOR_KEY, STRANGER_KEY);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, stranger));
        nft.mint(job);
    }

    function test_RevertWhen_NodeDeactivated() public {
        GenmintNFT.Job memory job = _job(1);
        vm.prank(owner);
        nft.deactivateNode(node);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, node));
        nft.mint(job);
    }

    function test_RevertWhen_ModelUnknown() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.modelHash = keccak256("unknown model");
        GenmintNFT.Job memory job = _job(request, _output(1), CREATOR_KEY, NODE_KEY);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, request.modelHash));
        nft.mint(job);
    }

    function test_RevertWhen_ModelDeactivated() public {
        GenmintNFT.Job memory job = _job(1);
        vm.prank(owner);
        nft.deactivateModel(MODEL);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, MODEL));
        nft.mint(job);
    }

    function test_RevertWhen_RequestExpired() public {
        GenmintNFT.Job memory job = _job(1);
        vm.warp(uint256(job.request.deadline) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                GenmintNFT.RequestExpired.selector, job.request.deadline, uint256(job.request.deadline) + 1
            )
        );
        nft.mint(job);
    }

    function test_RevertWhen_RequestReplayed() public {
        GenmintNFT.Job memory job = _job(1);
        uint256 tokenId = nft.mint(job);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AlreadyMinted.selector, tokenId));
        nft.mint(job);
    }

    function test_RevertWhen_DepositTooSmallForTheFee() public {
        GenmintNFT.GenerationRequest memory request = _request(1);
        request.fee = DEPOSIT + 1;
        GenmintNFT.Job memory job = _job(request, _output(1), CREATOR_KEY, NODE_KEY);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.InsufficientFunds.selector, creator, DEPOSIT, DEPOSIT + 1));
        nft.mint(job);
    }

    function test_RevertWhen_Paused() public {
        GenmintNFT.Job memory job = _job(1);
        vm.prank(owner);
        nft.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        nft.mint(job);
        GenmintNFT.Job[] memory jobs = new GenmintNFT.Job[](1);
        jobs[0] = job;
        vm.expectRevert(Pausable.EnforcedPause.selector);
        nft.mintBatch(jobs);
        // Everything else still works while paused.
        vm.prank(creator);
        nft.withdraw(1);
        vm.prank(owner);
        nft.unpause();
        nft.mint(job);
    }

    function test_RevertWhen_StaticMemberOutOfRange() public {
        GenmintNFT.Job memory job = _job(1);
        bytes memory data = abi.encodeCall(GenmintNFT.mint, (job));
        // The seed is the request's fifth member: word 4 of the request tuple, which starts at the
        // offset in the job's first head word (job head at byte 4 + 32).
        uint256 requestAt = 4 + 32 + uint256(_word(data, 4 + 32));
        uint256 seedAt = requestAt + 4 * 32;
        assembly ("memory-safe") {
            let p := add(add(data, 32), seedAt)
            mstore(p, or(mload(p), shl(64, 1)))
        }
        (bool ok, bytes memory reason) = address(nft).call(data);
        assertTrue(!ok && reason.length == 0, "a seed above 2^64 is refused before any check");
    }

    // ---------------------------------------------------------------- hashing

    function testFuzz_HashRequestIsTheEip712Digest(
        string memory prompt,
        string memory negativePrompt,
        string memory scheduler,
        uint64 seed,
        uint256 fee,
        uint256 nonce,
        uint32 width
    ) public view {
        GenmintNFT.GenerationRequest memory request = _request(nonce);
        request.prompt = prompt;
        request.negativePrompt = negativePrompt;
        request.scheduler = scheduler;
        request.seed = seed;
        request.fee = fee;
        request.width = width;
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("genmint"),
                keccak256("1"),
                block.chainid,
                address(nft)
            )
        );
        assertEq(
            nft.hashRequest(request),
            keccak256(abi.encodePacked("\x19\x01", domain, _referenceStructHash(request))),
            "digest"
        );
    }

    function testFuzz_MintAnyRequest(string memory prompt, string memory negativePrompt, uint64 seed, uint256 nonce)
        public
    {
        GenmintNFT.GenerationRequest memory request = _request(nonce);
        request.prompt = prompt;
        request.negativePrompt = negativePrompt;
        request.seed = seed;
        GenmintNFT.Job memory job = _job(request, _output(nonce), CREATOR_KEY, NODE_KEY);
        vm.recordLogs();
        uint256 tokenId = nft.mint(job);
        assertEq(tokenId, uint256(nft.hashRequest(request)), "token id");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory aigc = logs[logs.length - 1];
        assertEq(aigc.topics[2], keccak256(abi.encode(request)), "prompt topic = keccak256(abi.encode(request))");
        assertTrue(nft.verify(_prompt(job), _aigcData(job), _proof(job)), "verify");
    }

    // ---------------------------------------------------------------- ERC-7007

    function test_VerifyRefusesAnythingButTheMintedData() public {
        GenmintNFT.Job memory job = _job(1);
        assertTrue(!nft.verify(_prompt(job), _aigcData(job), _proof(job)), "not minted yet");
        nft.mint(job);
        bytes memory prompt = _prompt(job);
        bytes memory aigcData = _aigcData(job);
        bytes memory proof = _proof(job);
        assertTrue(nft.verify(prompt, aigcData, proof), "the minted data");

        assertTrue(!nft.verify(prompt, abi.encodePacked(keccak256("x"), job.output.imageCid), proof), "pixels");
        assertTrue(!nft.verify(prompt, abi.encodePacked(job.output.pixelDigest, "bafy"), proof), "image CID");
        assertTrue(!nft.verify(prompt, hex"00", proof), "short aigcData");
        assertTrue(!nft.verify(prompt, aigcData, hex"00"), "short proof");
        bytes memory swapped =
            abi.encodePacked(job.nodeSignature.r, job.nodeSignature.vs, Signing.sign(STRANGER_KEY, 0));
        assertTrue(!nft.verify(prompt, aigcData, swapped), "creator signature");
        GenmintNFT.CompactSignature memory other = Signing.signCompact(STRANGER_KEY, keccak256("x"));
        assertTrue(!nft.verify(prompt, aigcData, abi.encodePacked(other.r, other.vs, job.creatorSignature)), "node");
        GenmintNFT.GenerationRequest memory request = job.request;
        request.seed += 1;
        assertTrue(!nft.verify(abi.encode(request), aigcData, proof), "another request");
    }

    function test_AddAigcDataAnnouncesAMintedTokenAgain() public {
        GenmintNFT.Job memory job = _job(1);
        uint256 tokenId = nft.mint(job);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IERC7007.AigcData(tokenId, _prompt(job), _aigcData(job), _proof(job));
        nft.addAigcData(tokenId, _prompt(job), _aigcData(job), _proof(job));
    }

    function test_RevertWhen_AddAigcDataDoesNotMatch() public {
        GenmintNFT.Job memory job = _job(1);
        uint256 tokenId = uint256(nft.hashRequest(job.request));
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, tokenId));
        nft.addAigcData(tokenId, _prompt(job), _aigcData(job), _proof(job));

        nft.mint(job);
        uint256 other = nft.mint(_job(2));
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AigcDataMismatch.selector, other));
        nft.addAigcData(other, _prompt(job), _aigcData(job), _proof(job));
        bytes memory changed = abi.encodePacked(keccak256("x"), job.output.imageCid);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AigcDataMismatch.selector, tokenId));
        nft.addAigcData(tokenId, _prompt(job), changed, _proof(job));
        // The same request, encoded with a trailing byte: not the canonical prompt.
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.AigcDataMismatch.selector, tokenId));
        nft.addAigcData(tokenId, bytes.concat(_prompt(job), hex"00"), _aigcData(job), _proof(job));
    }

    // ---------------------------------------------------------------- standards

    function test_SupportsItsInterfaces() public view {
        assertEq(uint32(type(IERC7007).interfaceId), uint32(0x702c55a6), "ERC-7007 id");
        assertTrue(nft.supportsInterface(0x01ffc9a7), "ERC-165");
        assertTrue(nft.supportsInterface(type(IERC721).interfaceId), "ERC-721");
        assertTrue(nft.supportsInterface(type(IERC721Metadata).interfaceId), "ERC-721 metadata");
        assertTrue(nft.supportsInterface(0x702c55a6), "ERC-7007");
        assertTrue(nft.supportsInterface(type(IERC2981).interfaceId), "ERC-2981");
        assertTrue(nft.supportsInterface(0x49064906), "ERC-4906");
        assertTrue(!nft.supportsInterface(0xffffffff), "not 0xffffffff");
        assertEq(nft.name(), "genmint", "name");
        assertEq(nft.symbol(), "GENMINT", "symbol");
    }

    function test_RoyaltyRateIsCapped() public {
        vm.startPrank(owner);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.RoyaltyUpdated(1000);
        nft.setRoyalty(1000);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.RoyaltyTooHigh.selector, 1001, 1000));
        nft.setRoyalty(1001);
        vm.stopPrank();
        uint256 tokenId = nft.mint(_job(1));
        (, uint256 amount) = nft.royaltyInfo(tokenId, 1 ether);
        assertEq(amount, 0.1 ether, "10%");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.RoyaltyTooHigh.selector, 5000, 1000));
        new GenmintNFT(owner, 5000);
    }

    function test_RevertWhen_TokenNeverMinted() public {
        bytes memory nonexistent = abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, 7);
        vm.expectRevert(nonexistent);
        nft.ownerOf(7);
        vm.expectRevert(nonexistent);
        nft.tokenURI(7);
        vm.expectRevert(nonexistent);
        nft.provenance(7);
        vm.expectRevert(nonexistent);
        nft.royaltyInfo(7, 1 ether);
    }

    // ---------------------------------------------------------------- funds

    function test_DepositsAndWithdrawals() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.Deposited(stranger, creator, 2);
        vm.prank(creator);
        nft.depositFor{value: 2}(stranger);
        assertEq(nft.fundsOf(stranger), 2, "deposited for another account");

        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.Withdrawn(creator, creator, 0.25 ether);
        uint256 before = creator.balance;
        vm.prank(creator);
        nft.withdraw(0.25 ether);
        assertEq(creator.balance, before + 0.25 ether, "paid out");
        assertEq(nft.fundsOf(creator), DEPOSIT - 0.25 ether, "funds left");

        vm.prank(creator);
        nft.withdrawTo(payable(stranger), 0.25 ether);
        assertEq(stranger.balance, 0.25 ether, "paid to another address");

        nft.mint(_job(1));
        vm.prank(node);
        nft.withdraw(FEE);
        assertEq(node.balance, FEE, "the node withdrew its fee");
        assertEq(address(nft).balance, DEPOSIT - 0.5 ether - FEE + 2, "the contract holds exactly the funds");
    }

    function test_RevertWhen_WithdrawingMoreThanFunds() public {
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.InsufficientFunds.selector, creator, DEPOSIT, DEPOSIT + 1));
        vm.prank(creator);
        nft.withdraw(DEPOSIT + 1);
    }

    function test_RevertWhen_PaymentRefused() public {
        Refuser refuser = new Refuser();
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.PaymentFailed.selector, address(refuser), 1));
        vm.prank(creator);
        nft.withdrawTo(payable(address(refuser)), 1);
        assertEq(nft.fundsOf(creator), DEPOSIT, "nothing left the account");
    }

    function test_RevertWhen_FundsWouldOverflow() public {
        vm.deal(stranger, uint256(type(uint128).max) + 1);
        vm.startPrank(stranger);
        nft.depositFor{value: type(uint128).max - DEPOSIT}(creator);
        assertEq(nft.fundsOf(creator), type(uint128).max, "at the limit");
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.FundsOverflow.selector, creator));
        nft.depositFor{value: 1}(creator);
        vm.stopPrank();
    }

    function test_WithdrawCannotBeReentered() public {
        Reentrant attacker = new Reentrant(nft);
        vm.deal(address(attacker), 0);
        attacker.fund{value: 1 ether}();
        attacker.drain(1 ether);
        assertEq(attacker.reentries(), 1, "the receiver tried once");
        assertTrue(attacker.reentryFailed(), "and the second withdrawal failed: its funds were already zero");
        assertEq(address(attacker).balance, 1 ether, "it got its own funds and no more");
        assertEq(address(nft).balance, DEPOSIT, "the creator's deposit is intact");
    }

    // ---------------------------------------------------------------- registries and ownership

    function test_RegistriesRecordAndDeactivate() public {
        bytes32 model = keccak256("sd-turbo manifest");
        vm.startPrank(owner);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.ModelRegistered(model, "sd-turbo", "stability", "ipfs://licence");
        nft.registerModel(model, "sd-turbo", "stability", "ipfs://licence");
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.NodeRegistered(stranger, 2);
        nft.registerNode(stranger);
        vm.stopPrank();

        (string memory name, string memory author, string memory licence, bool active) = nft.modelInfo(model);
        assertEq(name, "sd-turbo", "name");
        assertEq(author, "stability", "author");
        assertEq(licence, "ipfs://licence", "licence");
        assertTrue(active && nft.isModel(model), "model active");
        assertTrue(nft.isNode(stranger), "node active");

        vm.startPrank(owner);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.ModelDeactivated(model);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IERC4906.BatchMetadataUpdate(0, type(uint256).max);
        nft.deactivateModel(model);
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.NodeDeactivated(stranger);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IERC4906.BatchMetadataUpdate(0, type(uint256).max);
        nft.deactivateNode(stranger);
        vm.stopPrank();

        (name,,, active) = nft.modelInfo(model);
        assertEq(name, "sd-turbo", "a deactivated model keeps its entry");
        assertTrue(!active && !nft.isModel(model), "model inactive");
        assertTrue(!nft.isNode(stranger), "node inactive");

        // Re-registering a node reactivates it under the same number.
        vm.expectEmit(true, true, true, true, address(nft));
        emit GenmintNFT.NodeRegistered(stranger, 2);
        vm.prank(owner);
        nft.registerNode(stranger);
    }

    function test_MintedTokensKeepADeactivatedNode() public {
        GenmintNFT.Job memory job = _job(1);
        uint256 tokenId = nft.mint(job);
        vm.prank(owner);
        nft.deactivateNode(node);
        assertEq(nft.provenance(tokenId).node, node, "the record keeps the node");
        assertTrue(nft.verify(_prompt(job), _aigcData(job), _proof(job)), "its data still verifies");
    }

    function test_RevertWhen_DeactivatingInactiveEntries() public {
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.NodeNotRegistered.selector, stranger));
        nft.deactivateNode(stranger);
        vm.expectRevert(abi.encodeWithSelector(GenmintNFT.ModelNotRegistered.selector, bytes32(0)));
        nft.deactivateModel(bytes32(0));
        vm.stopPrank();
    }

    function test_RevertWhen_OwnerFunctionsCalledByOthers() public {
        bytes memory unauthorized = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(unauthorized);
        nft.registerNode(stranger);
        vm.expectRevert(unauthorized);
        nft.deactivateNode(node);
        vm.expectRevert(unauthorized);
        nft.registerModel(bytes32(uint256(1)), "x", "y", "z");
        vm.expectRevert(unauthorized);
        nft.deactivateModel(MODEL);
        vm.expectRevert(unauthorized);
        nft.setRoyalty(0);
        vm.expectRevert(unauthorized);
        nft.pause();
        vm.expectRevert(unauthorized);
        nft.unpause();
        vm.expectRevert(unauthorized);
        nft.transferOwnership(stranger);
        vm.stopPrank();
        assertTrue(nft.isNode(node) && nft.isModel(MODEL) && !nft.isNode(stranger), "registries unchanged");
    }

    function test_OwnershipMovesInTwoSteps() public {
        vm.prank(owner);
        nft.transferOwnership(stranger);
        assertEq(nft.owner(), owner, "still the owner until accepted");
        assertEq(nft.pendingOwner(), stranger, "pending");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, creator));
        vm.prank(creator);
        nft.acceptOwnership();
        vm.prank(stranger);
        nft.acceptOwnership();
        assertEq(nft.owner(), stranger, "accepted");
    }

    function _word(bytes memory data, uint256 at) private pure returns (bytes32 word) {
        assembly ("memory-safe") {
            word := mload(add(add(data, 32), at))
        }
    }
}
