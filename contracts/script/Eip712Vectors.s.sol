// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";

/// @notice Writes test/vectors/eip712.json, the EIP-712 vectors shared by the Solidity and Rust test
/// suites: GenmintNFT's own digests and forge's RFC 6979 signatures for a fixed set of requests, for
/// the contract as anvil's account 0 first deploys it on chain 31337.
/// Run: forge script script/Eip712Vectors.s.sol
contract Eip712Vectors {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant CHAIN_ID = 31337;
    /// Anvil's account 0, and the first contract it creates (nonce 0).
    address internal constant DEPLOYER = 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266;
    address internal constant VERIFYING_CONTRACT = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    /// Anvil's default account 2 signs requests, account 1 runs the node.
    uint256 internal constant CREATOR_KEY = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
    uint256 internal constant NODE_KEY = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;

    string internal constant REQUEST_TYPE = "GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,uint64 seed,"
        "uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,uint256 fee,uint256 nonce,"
        "uint64 deadline)";
    string internal constant ATTESTATION_TYPE = "Attestation(bytes32 requestDigest,bytes32 modelHash,bytes32 pixelDigest,string imageCid,"
        "string metadataCid,address node)";

    struct Case {
        string name;
        GenmintNFT.GenerationRequest request;
        bytes32 pixelDigest;
        string imageCid;
        string metadataCid;
    }

    GenmintNFT internal nft;

    function run() external {
        GenmintNFT deployed = new GenmintNFT(DEPLOYER, 0);
        vm.chainId(CHAIN_ID);
        vm.etch(VERIFYING_CONTRACT, address(deployed).code);
        nft = GenmintNFT(VERIFYING_CONTRACT);

        Case[] memory cases = _cases();
        string memory json = string.concat(
            "{\n",
            '  "domain": {"name": "genmint", "version": "1", "chainId": ',
            _decimal(CHAIN_ID),
            ', "verifyingContract": ',
            _quote(vm.toString(VERIFYING_CONTRACT)),
            "},\n",
            '  "cases": [\n'
        );
        for (uint256 i = 0; i < cases.length; i++) {
            json = string.concat(json, _caseJson(cases[i]), i + 1 < cases.length ? ",\n" : "\n");
        }
        json = string.concat(json, "  ]\n}\n");
        vm.writeFile(string.concat(vm.projectRoot(), "/test/vectors/eip712.json"), json);
    }

    function _cases() internal pure returns (Case[] memory cases) {
        cases = new Case[](4);
        cases[0] = _case1();
        cases[1] = _case2();
        cases[2] = _case3();
        cases[3] = _case4();
    }

    function _case1() internal pure returns (Case memory) {
        GenmintNFT.GenerationRequest memory request = GenmintNFT.GenerationRequest({
            creator: vm.addr(CREATOR_KEY),
            modelHash: sha256("genmint vector model 1"),
            prompt: "a lighthouse on a cliff at sunset, oil painting",
            negativePrompt: "",
            seed: 42,
            width: 512,
            height: 512,
            steps: 20,
            guidance: 750,
            scheduler: "ddim",
            fee: 0,
            nonce: 1,
            deadline: 4_102_444_800
        });
        return Case({
            name: "ascii prompt, empty negative prompt",
            request: request,
            pixelDigest: sha256("genmint vector 1 pixels"),
            imageCid: "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta",
            metadataCid: "bafkreibaiijlxlod6bnuttbiipd3askmor5rrg2vtxb6zvgzd4kuqdiaci"
        });
    }

    function _case2() internal pure returns (Case memory) {
        GenmintNFT.GenerationRequest memory request = GenmintNFT.GenerationRequest({
            creator: vm.addr(CREATOR_KEY),
            modelHash: sha256("genmint vector model 2"),
            // "café ☕ 東京, watercolor at dawn"
            prompt: "caf\xc3\xa9 \xe2\x98\x95 \xe6\x9d\xb1\xe4\xba\xac, watercolor at dawn",
            // "blurry, low quality, текст, 🚫 watermark"
            negativePrompt: "blurry, low quality, \xd1\x82\xd0\xb5\xd0\xba\xd1\x81\xd1\x82, \xf0\x9f\x9a\xab watermark",
            seed: 123_456_789,
            width: 768,
            height: 512,
            steps: 30,
            guidance: 800,
            scheduler: "ddim",
            fee: 1_000_000_000_000_000,
            nonce: 7,
            deadline: 4_102_444_800
        });
        return Case({
            name: "utf-8 prompt and negative prompt",
            request: request,
            pixelDigest: sha256("genmint vector 2 pixels"),
            imageCid: "bafkreih4f5ey4wmmxfrczhj6nvmuydalodwn2vomai3xcwwop6g2rayyia",
            metadataCid: "bafkreiattppbw26xj2rvx6vafh66tzocgyjvttzsxa64acireoh6sirepm"
        });
    }

    function _case3() internal pure returns (Case memory) {
        GenmintNFT.GenerationRequest memory request = GenmintNFT.GenerationRequest({
            creator: vm.addr(CREATOR_KEY),
            modelHash: sha256("genmint vector model 3"),
            prompt: "an astronaut riding a horse, photorealistic",
            negativePrompt: "cartoon",
            seed: type(uint64).max,
            width: 1024,
            height: 1024,
            steps: type(uint32).max,
            guidance: type(uint32).max,
            scheduler: "ddim",
            fee: type(uint256).max,
            nonce: (1 << 255) + 0x1234,
            deadline: type(uint64).max
        });
        return Case({
            name: "largest integers",
            request: request,
            pixelDigest: sha256("genmint vector 3 pixels"),
            imageCid: "bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq",
            metadataCid: "bafkreih7m7plthysl6wkxmowlzizo7rffdbrzu65glebgqgcfbdeqprsq4"
        });
    }

    function _case4() internal pure returns (Case memory) {
        GenmintNFT.GenerationRequest memory request = GenmintNFT.GenerationRequest({
            creator: vm.addr(CREATOR_KEY),
            modelHash: sha256("genmint vector model 1"),
            prompt: "a sign that reads \"OPEN\"\n\tpath C:\\art\\",
            negativePrompt: "text\nletters",
            seed: 0,
            width: 256,
            height: 256,
            steps: 1,
            guidance: 0,
            scheduler: "ddim",
            fee: 1,
            nonce: 0,
            deadline: 1
        });
        return Case({
            name: "quotes, backslash, tab and newline in the prompt",
            request: request,
            pixelDigest: sha256("genmint vector 4 pixels"),
            imageCid: "bafkreicargf6sjf7pkqgr7yj3qluzsoxp34dq3me75vfku5uisdfu35uta",
            metadataCid: "bafkreihn2vnj7ptvyncwxfqsbcwdeog2nr77mkb3dqyhorurer2otwgw6m"
        });
    }

    function _caseJson(Case memory c) internal view returns (string memory) {
        bytes32 requestDigest = nft.hashRequest(c.request);
        GenmintNFT.Attestation memory attestation = GenmintNFT.Attestation({
            requestDigest: requestDigest,
            modelHash: c.request.modelHash,
            pixelDigest: c.pixelDigest,
            imageCid: c.imageCid,
            metadataCid: c.metadataCid,
            node: vm.addr(NODE_KEY)
        });
        bytes32 attestationDigest = nft.hashAttestation(attestation);
        string memory requestPart = string.concat(
            "    {\n",
            _entry("name", _quote(c.name)),
            _entry("request", _requestJson(c.request)),
            _entry("requestTypeHash", _quote(vm.toString(keccak256(bytes(REQUEST_TYPE))))),
            _entry("requestDigest", _quote(vm.toString(requestDigest))),
            _signatureJson("creator", CREATOR_KEY, requestDigest, ",\n")
        );
        return string.concat(
            requestPart,
            _entry("attestation", _attestationJson(attestation)),
            _entry("attestationTypeHash", _quote(vm.toString(keccak256(bytes(ATTESTATION_TYPE))))),
            _entry("attestationDigest", _quote(vm.toString(attestationDigest))),
            _signatureJson("node", NODE_KEY, attestationDigest, "\n"),
            "    }"
        );
    }

    function _requestJson(GenmintNFT.GenerationRequest memory r) internal pure returns (string memory) {
        string memory text = string.concat(
            _field("creator", _quote(vm.toString(r.creator))),
            _field("modelHash", _quote(vm.toString(r.modelHash))),
            _field("prompt", _quote(r.prompt)),
            _field("negativePrompt", _quote(r.negativePrompt))
        );
        text = string.concat(
            text,
            _field("seed", _decimal(r.seed)),
            _field("width", _decimal(r.width)),
            _field("height", _decimal(r.height)),
            _field("steps", _decimal(r.steps))
        );
        text = string.concat(
            text,
            _field("guidance", _decimal(r.guidance)),
            _field("scheduler", _quote(r.scheduler)),
            _field("fee", _decimal(r.fee)),
            _field("nonce", _decimal(r.nonce))
        );
        return string.concat("{\n", text, _lastField("deadline", _decimal(r.deadline)), "      }");
    }

    function _attestationJson(GenmintNFT.Attestation memory a) internal pure returns (string memory) {
        string memory text = string.concat(
            _field("requestDigest", _quote(vm.toString(a.requestDigest))),
            _field("modelHash", _quote(vm.toString(a.modelHash))),
            _field("pixelDigest", _quote(vm.toString(a.pixelDigest)))
        );
        text = string.concat(text, _field("imageCid", _quote(a.imageCid)), _field("metadataCid", _quote(a.metadataCid)));
        return string.concat("{\n", text, _lastField("node", _quote(vm.toString(a.node))), "      }");
    }

    /// @dev `"<role>PrivateKey"` and `"<role>Signature"` (r || s || v, v = 27 or 28) lines.
    function _signatureJson(string memory role, uint256 key, bytes32 digest, string memory end)
        internal
        pure
        returns (string memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return string.concat(
            _entry(string.concat(role, "PrivateKey"), _quote(vm.toString(bytes32(key)))),
            '      "',
            role,
            'Signature": ',
            _quote(vm.toString(abi.encodePacked(r, s, v))),
            end
        );
    }

    /// @dev A member of a case object.
    function _entry(string memory key, string memory value) internal pure returns (string memory) {
        return string.concat('      "', key, '": ', value, ",\n");
    }

    /// @dev A member of a request or attestation object.
    function _field(string memory key, string memory value) internal pure returns (string memory) {
        return string.concat('        "', key, '": ', value, ",\n");
    }

    /// @dev The last member of a request or attestation object.
    function _lastField(string memory key, string memory value) internal pure returns (string memory) {
        return string.concat('        "', key, '": ', value, "\n");
    }

    /// @dev Integers are decimal strings so that 256-bit values survive every JSON parser.
    function _decimal(uint256 value) internal pure returns (string memory) {
        return _quote(vm.toString(value));
    }

    /// @dev JSON string literal; escapes quote, backslash, newline and tab, and refuses other control bytes.
    function _quote(string memory text) internal pure returns (string memory) {
        bytes memory raw = bytes(text);
        bytes memory out = new bytes(raw.length * 2 + 2);
        uint256 n = 0;
        out[n++] = '"';
        for (uint256 i = 0; i < raw.length; i++) {
            bytes1 b = raw[i];
            if (b == '"' || b == "\\") {
                out[n++] = "\\";
                out[n++] = b;
            } else if (b == "\n") {
                out[n++] = "\\";
                out[n++] = "n";
            } else if (b == "\t") {
                out[n++] = "\\";
                out[n++] = "t";
            } else {
                require(uint8(b) >= 0x20, "control byte in vector text");
                out[n++] = b;
            }
        }
        out[n++] = '"';
        assembly ("memory-safe") {
            mstore(out, n)
        }
        return string(out);
    }
}
