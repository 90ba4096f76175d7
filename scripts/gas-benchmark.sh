#!/usr/bin/env bash
# The gas benchmark: on one fresh anvil, in one run, a plain OpenZeppelin ERC-721 mint, a mint of the
# ERC-7007 reference design (100-character prompt stored on chain), GenmintNFT's single mint, and
# GenmintNFT's batch of 20 (per token); then, on a second GenmintNFT, the dispute path end to end:
# an author bonds a model, operators join by stake, one mints a token with a forged pixel digest, another
# disputes it, two more vote, the chain's clock moves past the window (evm_increaseTime), the dispute is
# resolved (the forger slashed and deregistered, the token marked with ERC-7007 `Update` and ERC-4906
# `MetadataUpdate`) and a checker withdraws its unstaked wei. Prints a table of total transaction gas
# from the receipts, and fails if genmint's mint to an existing holder costs over 115,000 gas or a
# batched token over 80,000, or if the dispute did not end in a slash and a marked token.
#
#   scripts/gas-benchmark.sh
#
# anvil and forge come from $GENMINT_TOOLS/bin (default: .tools/bin, installed by scripts/setup.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${GENMINT_TOOLS:-$root/.tools}"
work="$(mktemp -d)"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
"$tools/bin/anvil" --port "$port" --silent >"$work/anvil.log" 2>&1 &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    "$tools/bin/cast" chain-id --rpc-url "http://127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.1
done

(cd "$root/contracts" && FOUNDRY_BROADCAST="$work/broadcast" "$tools/bin/forge" script script/GasBenchmark.s.sol --rpc-url "http://127.0.0.1:$port" \
    --broadcast --slow --cache-path "$work/cache" >"$work/forge.log" 2>&1) || {
    cat "$work/forge.log" >&2
    echo "the benchmark script failed" >&2
    exit 1
}

dispute() {
    (cd "$root/contracts" && FOUNDRY_BROADCAST="$work/broadcast" "$tools/bin/forge" script script/DisputeBenchmark.s.sol \
        --rpc-url "http://127.0.0.1:$port" --broadcast --slow --cache-path "$work/cache" "$@" >"$work/forge.log" 2>&1) || {
        cat "$work/forge.log" >&2
        echo "the dispute script failed ($1)" >&2
        exit 1
    }
}
dispute --sig "open()"
opened="$work/broadcast/DisputeBenchmark.s.sol/31337/open-latest.json"
nft="$(node -e 'const r=require(process.argv[1]);console.log(r.transactions.find((t)=>t.transactionType==="CREATE").contractAddress)' "$opened")"
# Past the dispute window and the unstake delay.
"$tools/bin/cast" rpc --rpc-url "http://127.0.0.1:$port" evm_increaseTime 604800 >/dev/null
"$tools/bin/cast" rpc --rpc-url "http://127.0.0.1:$port" evm_mine >/dev/null
dispute --sig "resolve(address)" "$nft"
forger=0x90F79bf6EB2c4f870365E785982E1f101E93b906
if [[ "$("$tools/bin/cast" call --rpc-url "http://127.0.0.1:$port" "$nft" "isNode(address)(bool)" "$forger")" != false ]]; then
    echo "the forger is still a node after the dispute" >&2
    exit 1
fi

marks="{$(for event in "Slashed(address,uint256,uint256,uint256)" "Update(uint256,bytes,bytes)" "MetadataUpdate(uint256)"; do
    printf '"%s": "%s",' "$event" "$("$tools/bin/cast" keccak "$event")"
done | sed 's/,$//')}"
node - "$work/broadcast/GasBenchmark.s.sol/31337/run-latest.json" "$("$tools/bin/anvil" --version | head -1)" "$opened" \
    "$work/broadcast/DisputeBenchmark.s.sol/31337/resolve-latest.json" "$marks" <<'JS'
const [file, anvil, opened, resolved, marksJson] = process.argv.slice(2);
const marks = JSON.parse(marksJson);
const runs = [file, opened, resolved].map((f) => require(f));
const run = { transactions: runs.flatMap((r) => r.transactions), receipts: runs.flatMap((r) => r.receipts) };
const gas = new Map(run.receipts.map((r) => [r.transactionHash, Number(BigInt(r.gasUsed))]));
const seen = {};
const rows = [];
for (const tx of run.transactions) {
    const fn = (tx.function || "").split("(")[0];
    // A script that is handed the contract's address broadcasts calls without its name.
    const key = `${tx.contractName || "GenmintNFT"}.${fn}`;
    const n = (seen[key] = (seen[key] || 0) + 1);
    const used = gas.get(tx.hash);
    const label = {
        "PlainERC721.mint": ["OpenZeppelin ERC-721 mint, new holder", "OpenZeppelin ERC-721 mint, existing holder"],
        "Erc7007Reference.mint": ["ERC-7007 reference mint (100-char prompt), new holder", "ERC-7007 reference mint (100-char prompt), existing holder"],
        "GenmintNFT.mint": ["genmint mint, new creator (fee settled)", "genmint mint, existing holder (fee settled)"],
        "GenmintNFT.mintBatch": ["genmint batch of 20, per token (fee settled)"],
        "GenmintNFT.bondModel": ["genmint bondModel (an author registers a model with a bond)"],
        "GenmintNFT.stake": ["genmint stake (an operator joins as a node)"],
        "GenmintNFT.openDispute": ["genmint openDispute (request, attested and re-derived digests, bond)"],
        "GenmintNFT.vote": ["genmint vote, first re-checker", "genmint vote, second re-checker"],
        "GenmintNFT.requestUnstake": ["genmint requestUnstake (the node leaves)"],
        "GenmintNFT.resolveDispute": ["genmint resolveDispute, fraud confirmed (slash, deregister, mark)"],
        "GenmintNFT.withdrawStake": ["genmint withdrawStake (after the delay)"],
    }[key];
    // Only the first stake (the others are alike) and no mint past the benchmark's two.
    if (!label || !label[n - 1]) continue;
    const input = Buffer.from((tx.transaction.input || tx.transaction.data).slice(2), "hex");
    const zeros = input.filter((b) => b === 0).length;
    const calldata = 4 * zeros + 16 * (input.length - zeros);
    const per = key === "GenmintNFT.mintBatch" ? 20 : 1;
    rows.push([label[n - 1], Math.round(used / per), used, Math.round(calldata / per)]);
}
console.log(`gas benchmark (${anvil}, one chain, one run; total transaction gas from receipts)`);
console.log("| transaction | gas | of which calldata | receipt gasUsed |");
console.log("|---|---:|---:|---:|");
const f = (n) => n.toLocaleString("en");
for (const [label, g, total, cd] of rows) console.log(`| ${label} | ${f(g)} | ${f(cd)} | ${f(total)} |`);
const limits = { "genmint mint, existing holder (fee settled)": 115000, "genmint batch of 20, per token (fee settled)": 80000 };
let over = 0;
for (const [label, g] of rows) {
    if (label in limits && g > limits[label]) {
        console.error(`${label}: ${f(g)} gas, over the ${f(limits[label])} budget`);
        over++;
    }
}
if (rows.length !== 15) { console.error(`expected 15 measured transactions, found ${rows.length}`); over++; }
// The resolution must have slashed the forger and marked its token.
const resolveTx = runs[2].transactions.find((t) => (t.function || "").startsWith("resolveDispute"));
const logs = runs[2].receipts.find((r) => r.transactionHash === resolveTx.hash).logs;
const topics = new Set(logs.map((l) => l.topics[0]));
for (const [name, topic] of Object.entries(marks)) {
    if (!topics.has(topic)) {
        console.error(`the dispute's resolution did not emit ${name}`);
        over++;
    }
}
process.exit(over ? 1 : 0);
JS
