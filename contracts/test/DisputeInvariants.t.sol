// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test, Vm} from "./Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "./utils/Signing.sol";

/// @notice Drives open membership and disputes at random: operators stake, ask stake back and try to
/// withdraw it; they mint honest and forged tokens; honest and lying challengers dispute them; honest
/// and lying re-checkers vote; disputes are resolved, early or late; time passes. The handler keeps its
/// own books (each operator's stake, each dispute's votes) and counts every outcome the contract should
/// have refused.
contract DisputeHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant OPERATORS = 5;
    uint256 internal constant CREATOR_KEY = 0xc0ffee;
    bytes32 internal constant MODEL = keccak256("dispute invariant model");

    struct Token {
        GenmintNFT.Job job;
        bytes32 truth;
        address node;
    }

    struct Tally {
        address challenger;
        bytes32 rechecked;
        uint64 deadline;
        uint16 confirmations;
        uint16 rejections;
        bool open;
        mapping(address => bool) voted;
    }

    GenmintNFT public immutable nft;
    uint256 internal nonce;
    Token[] internal tokens;
    /// Indices of the tokens whose dispute is open, so votes and resolutions find one.
    uint256[] internal disputed;
    /// Per token, its current dispute as the handler saw it.
    mapping(uint256 index => Tally) internal tallies;
    /// Per token index, how many times it was found fraudulent (at most once).
    mapping(uint256 index => uint256) public frauds;
    mapping(uint256 index => GenmintNFT.DisputeStatus) public decided;

    mapping(address => uint256) public expectedStaked;
    mapping(address => uint256) public expectedUnstaking;
    mapping(address => uint256) public unlockAt;
    mapping(address => uint256) public openAgainst;
    mapping(address => uint256) public expectedFunds;
    uint256 public openBonds;
    /// Disputes opened and votes cast, to tell that the runs reach them.
    uint256 public opened;
    uint256 public votes;
    uint256 public resolutions;
    uint256 public expectedBurned;

    /// Calls the contract accepted that the rules forbid, or refused that they allow (must stay zero).
    uint256 public wrongAcceptances;
    uint256 public wrongRefusals;
    /// Withdrawals before the delay passed or while a dispute was open (must stay zero).
    uint256 public earlyWithdrawals;
    /// Slashes without a quorum confirming the mismatch (must stay zero).
    uint256 public slashesWithoutQuorum;

    constructor(GenmintNFT nft_) {
        nft = nft_;
        vm.prank(nft.owner());
        nft.registerModel(MODEL, "dispute invariant", "genmint", "");
        address creator = vm.addr(CREATOR_KEY);
        vm.deal(creator, 1 ether);
        vm.prank(creator);
        nft.deposit{value: 1 ether}();
        expectedFunds[creator] = 1 ether;
        // Every operator starts as a node by stake, so disputes find voters.
        uint256 amount = nft.NODE_STAKE();
        for (uint256 i = 0; i < OPERATORS; i++) {
            address account = operator(i);
            vm.deal(account, amount);
            vm.prank(account);
            nft.stake{value: amount}();
            expectedStaked[account] = amount;
        }
    }

    function operator(uint256 i) public pure returns (address) {
        return vm.addr(0x5000 + i % OPERATORS);
    }

    function creator() public pure returns (address) {
        return vm.addr(CREATOR_KEY);
    }

    function minted() external view returns (uint256) {
        return tokens.length;
    }

    function tokenIdAt(uint256 index) public view returns (uint256) {
        return uint256(nft.hashRequest(tokens[index].job.request));
    }

    // ---------------------------------------------------------------- membership

    function stake(uint256 who, uint256 amount) external {
        address account = operator(who);
        amount = amount % 0.2 ether;
        vm.deal(account, amount);
        vm.prank(account);
        nft.stake{value: amount}();
        expectedStaked[account] += amount;
    }

    function requestUnstake(uint256 who, uint256 amount) external {
        address account = operator(who);
        amount = amount % (expectedStaked[account] + 1);
        vm.prank(account);
        nft.requestUnstake(amount);
        expectedStaked[account] -= amount;
        expectedUnstaking[account] += amount;
        unlockAt[account] = block.timestamp + nft.UNSTAKE_DELAY();
    }

    function withdrawStake(uint256 who) external {
        address account = operator(who);
        bool allowed = unlockAt[account] != 0 && block.timestamp >= unlockAt[account] && openAgainst[account] == 0;
        uint256 before = account.balance;
        vm.prank(account);
        try nft.withdrawStake() {
            if (!allowed) earlyWithdrawals++;
            if (account.balance - before != expectedUnstaking[account]) wrongAcceptances++;
            expectedUnstaking[account] = 0;
            unlockAt[account] = 0;
        } catch {
            if (allowed) wrongRefusals++;
        }
    }

    // ---------------------------------------------------------------- tokens

    /// Mints a token by an active operator, honest or with a pixel digest it never derived.
    function mint(uint256 nodeSeed, bool forged) external {
        address node = operator(nodeSeed);
        if (!nft.isNode(node)) return;
        uint256 n = nonce++;
        Token storage token = tokens.push();
        token.truth = keccak256(abi.encode("pixels", n));
        token.node = node;
        GenmintNFT.GenerationRequest memory request =
            Signing.defaultRequest(creator(), MODEL, 0, n, uint64(block.timestamp + 1));
        GenmintNFT.Output memory output = GenmintNFT.Output({
            pixelDigest: forged ? keccak256(abi.encode("forged", n)) : token.truth,
            metadataDigest: keccak256(abi.encode("metadata", n)),
            node: node,
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta"
        });
        token.job = Signing.signedJob(nft, request, output, CREATOR_KEY, 0x5000 + nodeSeed % OPERATORS);
        nft.mint(token.job);
    }

    // ---------------------------------------------------------------- disputes

    /// Disputes a token with the true digest, or with a lie.
    function openDispute(uint256 who, uint256 index, bool lie) external {
        if (tokens.length == 0) return;
        index %= tokens.length;
        Token storage token = tokens[index];
        GenmintNFT.Job memory job = token.job;
        bytes32 rechecked = lie ? keccak256(abi.encode("lie", index, nonce)) : token.truth;
        if (rechecked == job.output.pixelDigest) return;
        address by = operator(who);
        Tally storage tally = tallies[index];
        bool allowed = !tally.open && decided[index] == GenmintNFT.DisputeStatus.None && by != token.node;
        uint256 bond = nft.DISPUTE_BOND();
        vm.deal(by, bond);
        vm.prank(by);
        try nft.openDispute{value: bond}(
            job.request, job.output.pixelDigest, job.output.imageCid, job.nodeSignature, rechecked
        ) {
            if (!allowed) wrongAcceptances++;
            _newTally(index, by, rechecked);
            disputed.push(index);
            opened++;
            openAgainst[token.node]++;
            openBonds += bond;
        } catch {
            if (allowed) wrongRefusals++;
        }
    }

    /// A re-checker votes the digest it derives (the truth) or lies (the other side's digest).
    function vote(uint256 who, uint256 pick, bool lie) external {
        if (disputed.length == 0) return;
        uint256 index = disputed[pick % disputed.length];
        Token storage token = tokens[index];
        Tally storage tally = tallies[index];
        address by = operator(who);
        bytes32 attested = token.job.output.pixelDigest;
        bytes32 digest = token.truth;
        if (lie) digest = digest == tally.rechecked ? attested : tally.rechecked;
        bool allowed = nft.isNode(by) && by != token.node && by != tally.challenger && !tally.voted[by]
            && block.timestamp < tally.deadline;
        GenmintNFT.Evidence memory evidence = _evidence(index);
        uint256 tokenId = tokenIdAt(index);
        vm.prank(by);
        try nft.vote(tokenId, evidence, digest) {
            if (!allowed) wrongAcceptances++;
            tally.voted[by] = true;
            votes++;
            if (digest == tally.rechecked) tally.confirmations++;
            else if (digest == attested) tally.rejections++;
        } catch {
            if (allowed) wrongRefusals++;
        }
    }

    /// Resolves a dispute, whether or not its window has passed.
    function resolve(uint256 pick) external {
        if (disputed.length == 0) return;
        uint256 at = pick % disputed.length;
        uint256 index = disputed[at];
        Tally storage tally = tallies[index];
        Token storage token = tokens[index];
        bool allowed = block.timestamp >= tally.deadline;
        uint256 tokenId = tokenIdAt(index);
        GenmintNFT.Evidence memory evidence = _evidence(index);
        try nft.resolveDispute(tokenId, evidence) {
            if (!allowed) wrongAcceptances++;
            _settle(index, token.node, nft.disputeOf(tokenId).status);
            resolutions++;
            disputed[at] = disputed[disputed.length - 1];
            disputed.pop();
        } catch {
            if (allowed) wrongRefusals++;
        }
    }

    /// Mostly hours, within a dispute window; now and then a whole unstake delay.
    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + (seconds_ % 4 == 0 ? nft.UNSTAKE_DELAY() : seconds_ % 36 hours));
    }

    // ---------------------------------------------------------------- books

    function _newTally(uint256 index, address by, bytes32 rechecked) internal {
        // A new round: the old round's voters are forgotten.
        delete tallies[index];
        Tally storage tally = tallies[index];
        for (uint256 i = 0; i < OPERATORS; i++) {
            tally.voted[operator(i)] = false;
        }
        tally.challenger = by;
        tally.rechecked = rechecked;
        tally.deadline = uint64(block.timestamp + nft.DISPUTE_WINDOW());
        tally.open = true;
    }

    /// Applies the stated rule to the handler's own tally, and books the outcome it implies.
    function _settle(uint256 index, address node, GenmintNFT.DisputeStatus status) internal {
        Tally storage tally = tallies[index];
        uint256 quorum = nft.DISPUTE_QUORUM();
        uint256 bond = nft.DISPUTE_BOND();
        GenmintNFT.DisputeStatus expected = GenmintNFT.DisputeStatus.None;
        if (tally.confirmations >= quorum && tally.confirmations > tally.rejections) {
            expected = GenmintNFT.DisputeStatus.Fraud;
        } else if (tally.rejections >= quorum && tally.rejections > tally.confirmations) {
            expected = GenmintNFT.DisputeStatus.Rejected;
        }
        if (status == GenmintNFT.DisputeStatus.Fraud && expected != GenmintNFT.DisputeStatus.Fraud) {
            slashesWithoutQuorum++;
        }
        if (status != expected) wrongAcceptances++;
        tally.open = false;
        openAgainst[node]--;
        openBonds -= bond;
        decided[index] = status;
        if (status == GenmintNFT.DisputeStatus.Fraud) {
            frauds[index]++;
            uint256 amount = expectedStaked[node] + expectedUnstaking[node];
            uint256 reward = amount * nft.WINNER_SHARE_BPS() / 10_000;
            expectedStaked[node] = 0;
            expectedUnstaking[node] = 0;
            unlockAt[node] = 0;
            expectedFunds[tally.challenger] += reward + bond;
            expectedBurned += amount - reward;
        } else if (status == GenmintNFT.DisputeStatus.Rejected) {
            uint256 share = bond * nft.WINNER_SHARE_BPS() / 10_000;
            expectedFunds[node] += share;
            expectedBurned += bond - share;
        } else {
            expectedFunds[tally.challenger] += bond;
        }
    }

    function _evidence(uint256 index) internal view returns (GenmintNFT.Evidence memory) {
        GenmintNFT.Job memory job = tokens[index].job;
        return GenmintNFT.Evidence({
            promptHash: keccak256(abi.encode(job.request)),
            attestedDigest: job.output.pixelDigest,
            recheckedDigest: tallies[index].rechecked
        });
    }
}

/// @notice Invariants of staking and disputes: the contract holds exactly the stakes, bonds, funds
/// and burned wei; nobody is slashed without a quorum confirming the mismatch; no token is slashed
/// twice and a decided dispute stays decided; a withdrawal waits out the delay and every open
/// dispute against the operator. A dispute needs a mint, an opening, two votes, two days and a
/// resolution, so these runs go deeper than the default.
/// forge-config: default.invariant.depth = 64
contract DisputeInvariantsTest is Test {
    GenmintNFT internal nft;
    DisputeHandler internal handler;

    function setUp() public {
        vm.warp(1_767_225_600);
        nft = new GenmintNFT(address(this), 500);
        handler = new DisputeHandler(nft);
        nft.transferOwnership(address(handler));
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function invariant_StakeIsConserved() public view {
        uint256 held = nft.fundsOf(handler.creator());
        for (uint256 i = 0; i < 5; i++) {
            address account = handler.operator(i);
            GenmintNFT.Stake memory s = nft.stakeOf(account);
            assertEq(s.staked, handler.expectedStaked(account), "each operator's stake");
            assertEq(s.unstaking, handler.expectedUnstaking(account), "each operator's unstaking wei");
            assertEq(nft.fundsOf(account), handler.expectedFunds(account), "each operator's funds");
            assertEq(s.openDisputes, handler.openAgainst(account), "disputes open against each operator");
            held += uint256(s.staked) + s.unstaking + nft.fundsOf(account);
        }
        assertEq(nft.burned(), handler.expectedBurned(), "burned");
        assertEq(address(nft).balance, held + handler.openBonds() + nft.burned(), "stakes + bonds + funds + burned");
    }

    function invariant_NoSlashWithoutAConfirmedMismatch() public view {
        assertEq(handler.slashesWithoutQuorum(), 0, "slashes without a quorum");
        assertEq(handler.wrongAcceptances(), 0, "calls the rules forbid, accepted");
        assertEq(handler.wrongRefusals(), 0, "calls the rules allow, refused");
    }

    function invariant_NoDoubleSlash() public view {
        for (uint256 i = 0; i < handler.minted(); i++) {
            assertTrue(handler.frauds(i) <= 1, "a token found fraudulent twice");
            GenmintNFT.DisputeStatus decided = handler.decided(i);
            if (decided != GenmintNFT.DisputeStatus.None) {
                assertEq(uint8(nft.disputeOf(handler.tokenIdAt(i)).status), uint8(decided), "decided stays decided");
            }
        }
    }

    function invariant_WithdrawalWaitsOutDelayAndDisputes() public view {
        // Every withdrawal the handler tried was checked against its own clock and open disputes.
        assertEq(handler.earlyWithdrawals(), 0, "a withdrawal before its time or during a dispute");
        for (uint256 i = 0; i < 5; i++) {
            address account = handler.operator(i);
            GenmintNFT.Stake memory s = nft.stakeOf(account);
            if (s.unstaking != 0) assertEq(s.unlockAt, handler.unlockAt(account), "unlock time");
        }
    }
}
