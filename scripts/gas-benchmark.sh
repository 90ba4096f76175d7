#!/usr/bin/env bash
# The gas benchmark: on one fresh anvil, in one run, a plain OpenZeppelin ERC-721 mint, a mint of the
# ERC-7007 reference design (100-character prompt stored on chain), GenmintNFT's single mint, and
# GenmintNFT's batch of 20 (per token). Prints a table of total transaction gas from the receipts, and
# fails if genmint's mint to an existing holder costs over 115,000 gas or a batched token over 80,000.
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

node - "$work/broadcast/GasBenchmark.s.sol/31337/run-latest.json" "$("$tools/bin/anvil" --version | head -1)" <<'JS'
const [file, anvil] = process.argv.slice(2);
const run = require(file);
const gas = new Map(run.receipts.map((r) => [r.transactionHash, Number(BigInt(r.gasUsed))]));
const seen = {};
const rows = [];
for (const tx of run.transactions) {
    const fn = (tx.function || "").split("(")[0];
    const key = `${tx.contractName}.${fn}`;
    const n = (seen[key] = (seen[key] || 0) + 1);
    const used = gas.get(tx.hash);
    const label = {
        "PlainERC721.mint": ["OpenZeppelin ERC-721 mint, new holder", "OpenZeppelin ERC-721 mint, existing holder"],
        "Erc7007Reference.mint": ["ERC-7007 reference mint (100-char prompt), new holder", "ERC-7007 reference mint (100-char prompt), existing holder"],
        "GenmintNFT.mint": ["genmint mint, new creator (fee settled)", "genmint mint, existing holder (fee settled)"],
        "GenmintNFT.mintBatch": ["genmint batch of 20, per token (fee settled)"],
    }[key];
    if (!label) continue;
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
if (rows.length !== 7) { console.error(`expected 7 measured transactions, found ${rows.length}`); over++; }
process.exit(over ? 1 : 0);
JS
