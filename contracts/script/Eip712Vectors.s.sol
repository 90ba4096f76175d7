// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/Vm.sol";
import {GenmintNFT} from "../src/GenmintNFT.sol";
import {Signing} from "../test/utils/Signing.sol";

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
    /// 2100-01-01, the deadline of the cases that do not test it.
    uint64 internal constant FAR_DEADLINE = 4_102_444_800;

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

    /// @dev Anvil's account 2 signs every request; each case starts from the tests' standard request.
    function _cases() internal pure returns (Case[] memory cases) {
        address creator = vm.addr(Signing.CREATOR_KEY);
        cases = new Case[](4);

        GenmintNFT.GenerationRequest memory r =
            Signing.defaultRequest(creator, sha256("genmint vector model 1"), 0, 1, FAR_DEADLINE);
        cases[0] = _case(
            1,
            "ascii prompt, empty negative prompt",
            r,
            "bafkreie3dng25gdeyvppfnll5bppa27tst52eztxbgta4noto22t6o3jta",
            "bafkreibaiijlxlod6bnuttbiipd3askmor5rrg2vtxb6zvgzd4kuqdiaci"
        );

        r = Signing.defaultRequest(creator, sha256("genmint vector model 2"), 1_000_000_000_000_000, 7, FAR_DEADLINE);
        // "café ☕ 東京, watercolor at dawn"
        r.prompt = "caf\xc3\xa9 \xe2\x98\x95 \xe6\x9d\xb1\xe4\xba\xac, watercolor at dawn";
        // "blurry, low quality, текст, 🚫 watermark"
        r.negativePrompt = "blurry, low quality, \xd1\x82\xd0\xb5\xd0\xba\xd1\x81\xd1\x82, \xf0\x9f\x9a\xab watermark";
        r.seed = 123_456_789;
        r.width = 768;
        (r.steps, r.guidance) = (30, 800);
        cases[1] = _case(
            2,
            "utf-8 prompt and negative prompt",
            r,
            "bafkreih4f5ey4wmmxfrczhj6nvmuydalodwn2vomai3xcwwop6g2rayyia",
            "bafkreiattppbw26xj2rvx6vafh66tzocgyjvttzsxa64acireoh6sirepm"
        );

        r = Signing.defaultRequest(
            creator, sha256("genmint vector model 3"), type(uint256).max, (1 << 255) + 0x1234, type(uint64).max
        );
        r.prompt = "an astronaut riding a horse, photorealistic";
        r.negativePrompt = "cartoon";
        r.seed = type(uint64).max;
        (r.width, r.height) = (1024, 1024);
        (r.steps, r.guidance) = (type(uint32).max, type(uint32).max);
        cases[2] = _case(
            3,
            "largest integers",
            r,
            "bafybeih7gz5kvvg2zafb7vue6izhy6c4tglvwpi3rgunwdag2fidn2y6eq",
            "bafkreih7m7plthysl6wkxmowlzizo7rffdbrzu65glebgqgcfbdeqprsq4"
        );

        r = Signing.defaultRequest(creator, sha256("genmint vector model 1"), 1, 0, 1);
        r.prompt = "a sign that reads \"OPEN\"\n\tpath C:\\art\\";
        r.negativePrompt = "text\nletters";
        r.seed = 0;
        (r.width, r.height) = (256, 256);
        (r.steps, r.guidance) = (1, 0);
        cases[3] = _case(
            4,
            "quotes, backslash, tab and newline in the prompt",
            r,
            "bafkreicargf6sjf7pkqgr7yj3qluzsoxp34dq3me75vfku5uisdfu35uta",
            "bafkreihn2vnj7ptvyncwxfqsbcwdeog2nr77mkb3dqyhorurer2otwgw6m"
        );
    }

    /// @dev Case `n`, whose pixel digest is sha256("genmint vector <n> pixels").
    function _case(
        uint256 n,
        string memory name,
        GenmintNFT.GenerationRequest memory request,
        string memory imageCid,
        string memory metadataCid
    ) internal pure returns (Case memory) {
        bytes32 pixelDigest = sha256(bytes(string.concat("genmint vector ", vm.toString(n), " pixels")));
        return
            Case({name: name, request: request, pixelDigest: pixelDigest, imageCid: imageCid, metadataCid: metadataCid});
    }

    function _caseJson(Case memory c) internal view returns (string memory) {
        bytes32 requestDigest = nft.hashRequest(c.request);
        GenmintNFT.Attestation memory attestation = GenmintNFT.Attestation({
            requestDigest: requestDigest,
            modelHash: c.request.modelHash,
            pixelDigest: c.pixelDigest,
            imageCid: c.imageCid,
            metadataCid: c.metadataCid,
            node: vm.addr(Signing.NODE_KEY)
        });
        bytes32 attestationDigest = nft.hashAttestation(attestation);
        string memory requestPart = string.concat(
            "    {\n",
            _entry("name", _quote(c.name)),
            _entry("request", _requestJson(c.request)),
            _entry("requestTypeHash", _quote(vm.toString(keccak256(bytes(Signing.REQUEST_TYPE))))),
            _entry("requestDigest", _quote(vm.toString(requestDigest))),
            _signatureJson("creator", Signing.CREATOR_KEY, requestDigest, ",\n")
        );
        return string.concat(
            requestPart,
            _entry("attestation", _attestationJson(attestation)),
            _entry("attestationTypeHash", _quote(vm.toString(keccak256(bytes(Signing.ATTESTATION_TYPE))))),
            _entry("attestationDigest", _quote(vm.toString(attestationDigest))),
            _signatureJson("node", Signing.NODE_KEY, attestationDigest, "\n"),
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
        return string.concat(
            _entry(string.concat(role, "PrivateKey"), _quote(vm.toString(bytes32(key)))),
            '      "',
            role,
            'Signature": ',
            _quote(vm.toString(Signing.sign(key, digest))),
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
