#!/usr/bin/env bash
# Checks test/vectors/eip712.json without Solidity: for every case it rebuilds the type hashes, the
# domain separator, the struct hashes and the digests by hand with `cast keccak` / `cast abi-encode`,
# has cast sign the EIP-712 typed-data JSON (alloy's encoder) and the raw digest, and checks that
# both signatures equal the file's and recover the file's creator / node address.
# Usage: contracts/script/crosscheck-vectors.sh [vectors.json]   (needs cast and jq)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vectors="${1:-$here/test/vectors/eip712.json}"
tools="${GENMINT_TOOLS:-$here/../.tools}"
cast="$tools/bin/cast"
[[ -x "$cast" ]] || cast="$(command -v cast)"

request_type='GenerationRequest(address creator,bytes32 modelHash,string prompt,string negativePrompt,uint64 seed,uint32 width,uint32 height,uint32 steps,uint32 guidance,string scheduler,uint256 fee,uint256 nonce,uint64 deadline)'
attestation_type='Attestation(bytes32 requestDigest,bytes32 modelHash,bytes32 pixelDigest,string imageCid,string metadataCid,address node)'
domain_type='EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'

failures=0
expect() { # what expected actual
    local want="${2,,}" got="${3,,}"
    if [[ "$want" == "$got" ]]; then
        echo "  ok   $1"
    else
        echo "  FAIL $1: file $2, recomputed $3"
        failures=$((failures + 1))
    fi
}
# keccak256 of a string's UTF-8 bytes (hex-encoded first so a leading "0x" is not read as hex).
keccak_text() { "$cast" keccak "0x$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"; }
jv() { jq -r "$1" "$vectors"; }

chain_id="$(jv .domain.chainId)"
verifying_contract="$(jv .domain.verifyingContract)"
domain_separator="$("$cast" keccak "$("$cast" abi-encode 'f(bytes32,bytes32,bytes32,uint256,address)' \
    "$("$cast" keccak "$domain_type")" "$(keccak_text "$(jv .domain.name)")" \
    "$(keccak_text "$(jv .domain.version)")" "$chain_id" "$verifying_contract")")"
echo "domain separator $domain_separator"

cases="$(jq '.cases | length' "$vectors")"
for ((i = 0; i < cases; i++)); do
    c=".cases[$i]"
    echo "case $i: $(jv "$c.name")"
    r="$c.request"
    a="$c.attestation"

    expect requestTypeHash "$(jv "$c.requestTypeHash")" "$("$cast" keccak "$request_type")"
    request_struct="$("$cast" keccak "$("$cast" abi-encode \
        'f(bytes32,address,bytes32,bytes32,bytes32,uint64,uint32,uint32,uint32,uint32,bytes32,uint256,uint256,uint64)' \
        "$("$cast" keccak "$request_type")" "$(jv "$r.creator")" "$(jv "$r.modelHash")" \
        "$(keccak_text "$(jv "$r.prompt")")" "$(keccak_text "$(jv "$r.negativePrompt")")" \
        "$(jv "$r.seed")" "$(jv "$r.width")" "$(jv "$r.height")" "$(jv "$r.steps")" "$(jv "$r.guidance")" \
        "$(keccak_text "$(jv "$r.scheduler")")" "$(jv "$r.fee")" "$(jv "$r.nonce")" "$(jv "$r.deadline")")")"
    request_digest="$("$cast" keccak "0x1901${domain_separator#0x}${request_struct#0x}")"
    expect requestDigest "$(jv "$c.requestDigest")" "$request_digest"
    expect attestation.requestDigest "$(jv "$a.requestDigest")" "$request_digest"

    expect attestationTypeHash "$(jv "$c.attestationTypeHash")" "$("$cast" keccak "$attestation_type")"
    attestation_struct="$("$cast" keccak "$("$cast" abi-encode 'f(bytes32,bytes32,bytes32,bytes32,bytes32,bytes32,address)' \
        "$("$cast" keccak "$attestation_type")" "$(jv "$a.requestDigest")" "$(jv "$a.modelHash")" \
        "$(jv "$a.pixelDigest")" "$(keccak_text "$(jv "$a.imageCid")")" \
        "$(keccak_text "$(jv "$a.metadataCid")")" "$(jv "$a.node")")")"
    attestation_digest="$("$cast" keccak "0x1901${domain_separator#0x}${attestation_struct#0x}")"
    expect attestationDigest "$(jv "$c.attestationDigest")" "$attestation_digest"

    # Typed-data JSON for cast's own EIP-712 encoder (integers stay decimal strings).
    typed_request="$(jq --argjson i "$i" '{
        types: {
            EIP712Domain: [{name:"name",type:"string"},{name:"version",type:"string"},
                           {name:"chainId",type:"uint256"},{name:"verifyingContract",type:"address"}],
            GenerationRequest: [{name:"creator",type:"address"},{name:"modelHash",type:"bytes32"},
                {name:"prompt",type:"string"},{name:"negativePrompt",type:"string"},{name:"seed",type:"uint64"},
                {name:"width",type:"uint32"},{name:"height",type:"uint32"},{name:"steps",type:"uint32"},
                {name:"guidance",type:"uint32"},{name:"scheduler",type:"string"},{name:"fee",type:"uint256"},
                {name:"nonce",type:"uint256"},{name:"deadline",type:"uint64"}]},
        primaryType: "GenerationRequest", domain: .domain, message: .cases[$i].request}' "$vectors")"
    typed_attestation="$(jq --argjson i "$i" '{
        types: {
            EIP712Domain: [{name:"name",type:"string"},{name:"version",type:"string"},
                           {name:"chainId",type:"uint256"},{name:"verifyingContract",type:"address"}],
            Attestation: [{name:"requestDigest",type:"bytes32"},{name:"modelHash",type:"bytes32"},
                {name:"pixelDigest",type:"bytes32"},{name:"imageCid",type:"string"},
                {name:"metadataCid",type:"string"},{name:"node",type:"address"}]},
        primaryType: "Attestation", domain: .domain, message: .cases[$i].attestation}' "$vectors")"

    creator_sig="$(jv "$c.creatorSignature")"
    expect "creatorSignature (typed data)" "$creator_sig" \
        "$("$cast" wallet sign --data "$typed_request" --private-key "$(jv "$c.creatorPrivateKey")")"
    expect "creatorSignature (raw digest)" "$creator_sig" \
        "$("$cast" wallet sign --no-hash "$request_digest" --private-key "$(jv "$c.creatorPrivateKey")")"
    expect "creator key address" "$(jv "$r.creator")" \
        "$("$cast" wallet address --private-key "$(jv "$c.creatorPrivateKey")")"
    if "$cast" wallet verify --data --address "$(jv "$r.creator")" "$typed_request" "$creator_sig" >/dev/null; then
        echo "  ok   creatorSignature recovers request.creator"
    else
        echo "  FAIL creatorSignature does not recover request.creator"
        failures=$((failures + 1))
    fi

    node_sig="$(jv "$c.nodeSignature")"
    expect "nodeSignature (typed data)" "$node_sig" \
        "$("$cast" wallet sign --data "$typed_attestation" --private-key "$(jv "$c.nodePrivateKey")")"
    expect "nodeSignature (raw digest)" "$node_sig" \
        "$("$cast" wallet sign --no-hash "$attestation_digest" --private-key "$(jv "$c.nodePrivateKey")")"
    expect "node key address" "$(jv "$a.node")" "$("$cast" wallet address --private-key "$(jv "$c.nodePrivateKey")")"
    if "$cast" wallet verify --data --address "$(jv "$a.node")" "$typed_attestation" "$node_sig" >/dev/null; then
        echo "  ok   nodeSignature recovers attestation.node"
    else
        echo "  FAIL nodeSignature does not recover attestation.node"
        failures=$((failures + 1))
    fi
done

if ((failures > 0)); then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all $cases cases agree"
