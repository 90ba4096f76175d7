// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "../test/utils/Signing.sol";

/// @notice The dispute path on a running chain (anvil's default accounts), for scripts/gas-benchmark.sh:
/// `open()` deploys GenmintNFT, lets an author bond a model and four operators join by stake, has one
/// of them (the forger) mint a token whose pixel digest it never derived, a second dispute it with the
/// digest it re-derived and the other two vote that digest; after the shell script moves the chain's
/// clock past the window and the unstake delay, `resolve(nft)` confirms the fraud (slash and mark) and
/// a checker that asked its stake back withdraws it.
contract DisputeBenchmark {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // Anvil's default accounts 3 to 6.
    uint256 internal constant FORGER_KEY = 0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6;
    uint256 internal constant CHALLENGER_KEY = 0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a;
    uint256 internal constant CHECKER_KEY = 0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba;
    uint256 internal constant LEAVER_KEY = 0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e;
    bytes32 internal constant MODEL = keccak256("genmint dispute benchmark model");
    string internal constant IMAGE_CID = "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta";

    function open() external {
        vm.startBroadcast(Signing.OWNER_KEY);
        GenmintNFT nft = new GenmintNFT(vm.addr(Signing.OWNER_KEY), 500);
        vm.stopBroadcast();

        vm.startBroadcast(Signing.NODE_KEY);
        nft.bondModel{value: nft.MODEL_BOND()}(MODEL, "bench", "genmint", "https://genmint.invalid/licence");
        vm.stopBroadcast();
        vm.startBroadcast(Signing.CREATOR_KEY);
        nft.deposit{value: 0.1 ether}();
        vm.stopBroadcast();
        uint256[4] memory keys = [FORGER_KEY, CHALLENGER_KEY, CHECKER_KEY, LEAVER_KEY];
        for (uint256 i = 0; i < keys.length; i++) {
            vm.startBroadcast(keys[i]);
            nft.stake{value: nft.NODE_STAKE()}();
            vm.stopBroadcast();
        }

        GenmintNFT.Job memory job = _forgedJob(nft);
        vm.startBroadcast(FORGER_KEY);
        uint256 tokenId = nft.mint(job);
        vm.stopBroadcast();

        vm.startBroadcast(CHALLENGER_KEY);
        nft.openDispute{value: nft.DISPUTE_BOND()}(
            job.request, job.output.pixelDigest, job.output.imageCid, job.nodeSignature, _truth()
        );
        vm.stopBroadcast();
        GenmintNFT.Evidence memory evidence = _evidence(job);
        vm.startBroadcast(CHECKER_KEY);
        nft.vote(tokenId, evidence, _truth());
        vm.stopBroadcast();
        vm.startBroadcast(LEAVER_KEY);
        nft.vote(tokenId, evidence, _truth());
        nft.requestUnstake(nft.NODE_STAKE());
        vm.stopBroadcast();
    }

    function resolve(GenmintNFT nft) external {
        GenmintNFT.Job memory job = _forgedJob(nft);
        uint256 tokenId = uint256(nft.hashRequest(job.request));
        vm.startBroadcast(CHECKER_KEY);
        nft.resolveDispute(tokenId, _evidence(job));
        vm.stopBroadcast();
        vm.startBroadcast(LEAVER_KEY);
        nft.withdrawStake();
        vm.stopBroadcast();
    }

    /// @dev What an honest node derives for the request.
    function _truth() internal pure returns (bytes32) {
        return sha256("the pixels the request really yields");
    }

    /// @dev The standard request with outputs the forger signed over a digest it never derived.
    function _forgedJob(GenmintNFT nft) internal view returns (GenmintNFT.Job memory) {
        GenmintNFT.GenerationRequest memory request =
            Signing.defaultRequest(vm.addr(Signing.CREATOR_KEY), MODEL, 0.001 ether, 0, type(uint64).max);
        GenmintNFT.Output memory output = GenmintNFT.Output({
            pixelDigest: sha256("pixels the forger never derived"),
            metadataDigest: sha256("the forger's metadata"),
            node: vm.addr(FORGER_KEY),
            imageCid: IMAGE_CID
        });
        return Signing.signedJob(nft, request, output, Signing.CREATOR_KEY, FORGER_KEY);
    }

    function _evidence(GenmintNFT.Job memory job) internal pure returns (GenmintNFT.Evidence memory) {
        return GenmintNFT.Evidence({
            promptHash: keccak256(abi.encode(job.request)),
            attestedDigest: job.output.pixelDigest,
            recheckedDigest: _truth()
        });
    }
}
