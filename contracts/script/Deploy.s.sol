// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";

/// @notice Deploys GenmintNFT from the broadcasting key. The owner defaults to that key; the creator
/// royalty rate to 5%.
///
///   forge script script/Deploy.s.sol --rpc-url $RPC --private-key $KEY --broadcast
///   GENMINT_OWNER=0x... GENMINT_ROYALTY_BPS=250 forge script ...   (other owner, 2.5%)
///
/// `genmint contracts deploy` does the same from the committed artifact and also writes
/// contracts/deployments/<chainId>.json.
contract Deploy {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external returns (GenmintNFT nft) {
        vm.startBroadcast();
        address owner = vm.envOr("GENMINT_OWNER", msg.sender);
        uint256 royaltyBps = vm.envOr("GENMINT_ROYALTY_BPS", uint256(500));
        require(royaltyBps <= type(uint96).max, "GENMINT_ROYALTY_BPS is out of range");
        // forge-lint: disable-next-line(unsafe-typecast) checked just above
        nft = new GenmintNFT(owner, uint96(royaltyBps));
        vm.stopBroadcast();
    }
}
