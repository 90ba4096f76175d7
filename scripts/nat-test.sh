#!/usr/bin/env bash
# Operators behind NAT, end to end in network namespaces: a node that only a NAT router lets out
# takes forwarded jobs and mints them. Needs root, `ip netns` and iptables; every namespace,
# process and file it makes goes again when it exits.
#
#   gm-pub  "the internet": anvil, Kubo, relay node R (relay_service; serves another model)
#     ├─ 10.77.1.0/24 ─ gm-r1 (MASQUERADE) ─ 192.168.71.0/24 ─ gm-nat1: node N, the only node
#     │                                                         serving the emoji model
#     └─ 10.77.2.0/24 ─ gm-r2 (MASQUERADE) ─ 192.168.72.0/24 ─ gm-nat2: node O, an origin behind
#                                                               NAT too (serves the other model)
#
# N and O name R in [p2p] relays and hold a circuit relay v2 reservation on it. Two jobs for the
# emoji model, signed by a creator:
#   1. submitted to R (public): R forwards it to N over the connection N opened to R;
#   2. submitted to O: O dials N through R's /p2p-circuit address (N's advert carries it), DCUtR
#      tries to punch a direct connection between the two NATs, and the job goes through
#      whichever connection there is.
# Each must end minted by N's operator. Prints the times and whether O's connection to N ended
# direct (hole punched) or relayed.
#
#   scripts/nat-test.sh [--strict-nat]   (scripts/test.sh runs it when it runs as root)
#   NAT_TEST_LOGS=DIR scripts/nat-test.sh   keeps every process's log in DIR
#
# The routers drop unsolicited packets to themselves, as most home routers do, and hole punching
# succeeds. With --strict-nat they let such packets in (refusing them), which leaves conntrack
# entries that make MASQUERADE move the next flow out to another port: hole punching fails, and
# the second job must go through the relay.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GENMINT_TOOLS="${GENMINT_TOOLS:-$ROOT/.tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genmint/target}"
export PATH="$GENMINT_TOOLS/bin:$PATH"
say() { echo "nat-test: $*" >&2; }
strict=no
case "${1:-}" in
  --strict-nat) strict=yes ;;
  "") ;;
  *) echo "nat-test: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
esac
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces and iptables)"
command -v iptables >/dev/null || fail "iptables is missing: run scripts/setup.sh"
for tool in anvil cast ipfs; do
  [ -x "$GENMINT_TOOLS/bin/$tool" ] || fail "$tool is not installed: run scripts/setup.sh"
done

NAMESPACES=(gm-pub gm-r1 gm-r2 gm-nat1 gm-nat2)
for ns in "${NAMESPACES[@]}"; do
  if ip netns list | grep -qw "$ns"; then
    fail "network namespace $ns exists already (another nat-test running?); remove it with: ip netns del $ns"
  fi
done

cd "$ROOT"
cargo build --quiet --locked -p genmint-node --bin genmint
GENMINT="$CARGO_TARGET_DIR/debug/genmint"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ "$status" -ne 0 ] && [ -d "$WORK" ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "---- last lines of $(basename "$log")" >&2
      tail -25 "$log" >&2
    done
  fi
  if [ -n "${NAT_TEST_LOGS:-}" ]; then
    mkdir -p "$NAT_TEST_LOGS" && cp "$WORK"/*.log "$NAT_TEST_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT INT TERM

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }
started=$(date +%s)

# ---- the networks ----------------------------------------------------------------------------
for ns in "${NAMESPACES[@]}"; do
  ip netns add "$ns"
  in_ns "$ns" ip link set lo up
done
in_ns gm-pub sysctl -qw net.ipv4.ip_forward=1
for i in 1 2; do
  router="gm-r$i" home="gm-nat$i"
  ip link add "pub-r$i" netns gm-pub type veth peer name "r$i-pub" netns "$router"
  ip link add "r$i-home" netns "$router" type veth peer name "home-r$i" netns "$home"
  in_ns gm-pub ip addr add "10.77.$i.1/24" dev "pub-r$i"
  in_ns gm-pub ip link set "pub-r$i" up
  in_ns "$router" ip addr add "10.77.$i.2/24" dev "r$i-pub"
  in_ns "$router" ip addr add "192.168.7$i.1/24" dev "r$i-home"
  in_ns "$router" ip link set "r$i-pub" up
  in_ns "$router" ip link set "r$i-home" up
  in_ns "$router" ip route add default via "10.77.$i.1"
  in_ns "$router" sysctl -qw net.ipv4.ip_forward=1
  # A home router: everything out is masqueraded; in, only what answers an outbound flow. Its
  # firewall drops unsolicited packets to the router itself too, so that none leaves a conntrack
  # entry that would make MASQUERADE pick another port for the flow out a moment later.
  in_ns "$router" iptables -t nat -A POSTROUTING -o "r$i-pub" -j MASQUERADE
  chains=("FORWARD -o r$i-home")
  [ "$strict" = yes ] || chains+=(INPUT)
  for chain in "${chains[@]}"; do
    # shellcheck disable=SC2086 # the chain and its output interface are separate words
    in_ns "$router" iptables -A $chain -i "r$i-pub" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    # shellcheck disable=SC2086
    in_ns "$router" iptables -A $chain -i "r$i-pub" -j DROP
  done
  in_ns "$home" ip addr add "192.168.7$i.2/24" dev "home-r$i"
  in_ns "$home" ip link set "home-r$i" up
  in_ns "$home" ip route add default via "192.168.7$i.1"
done

# ---- the chain and IPFS in the public namespace ------------------------------------------------
# anvil's first account deploys and registers; the nodes' operators are new keys it funds.
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
OPERATOR_KEYS=()
for _ in 1 2 3; do OPERATOR_KEYS+=("$(cast wallet new --json | jq -r '.[0].private_key')"); done
in_ns gm-pub anvil --host 0.0.0.0 --port 8545 --chain-id 31337 >"$WORK/anvil.log" 2>&1 &
PIDS+=($!)
RPC=http://127.0.0.1:8545
for _ in $(seq 100); do in_ns gm-pub cast chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.1; done
in_ns gm-pub cast chain-id --rpc-url "$RPC" >/dev/null || fail "anvil did not start"
for i in 1 2; do
  in_ns "gm-nat$i" cast chain-id --rpc-url "http://10.77.$i.1:8545" >/dev/null ||
    fail "gm-nat$i cannot reach the public namespace through its router"
done
if in_ns gm-pub curl -s --connect-timeout 2 http://192.168.71.2:9 >/dev/null 2>&1 ||
  in_ns gm-pub ip route get 192.168.71.2 >/dev/null 2>&1; then
  fail "the public namespace has a way to gm-nat1: the NAT is not in the way"
fi
say "namespaces up: gm-pub, gm-r1/gm-nat1 and gm-r2/gm-nat2 behind MASQUERADE (strict: $strict)"

# Kubo with the settings genmint's own dev Kubo uses, its RPC API on every interface of the public
# namespace (the NATed nodes pin through it).
export IPFS_PATH="$WORK/kubo" IPFS_TELEMETRY=off
ipfs init --empty-repo --profile test,unixfs-v1-2025 >"$WORK/kubo-init.log" 2>&1
for setting in \
  'Addresses.API "/ip4/0.0.0.0/tcp/5001"' 'Addresses.Gateway "/ip4/127.0.0.1/tcp/0"' \
  'Addresses.Swarm []' 'Addresses.Announce []' 'Bootstrap []' 'Peering.Peers []' \
  'Discovery.MDNS.Enabled false' 'Routing.Type "none"' 'Import.CidVersion 1' \
  'Import.HashFunction "sha2-256"' 'Import.UnixFSRawLeaves true' 'Import.UnixFSChunker "size-1048576"' \
  'Import.UnixFSDAGLayout "balanced"' 'Import.UnixFSFileMaxLinks 1024'; do
  # shellcheck disable=SC2086 # key and JSON value are two words
  ipfs config --json $setting
done
in_ns gm-pub ipfs daemon --offline >"$WORK/kubo.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  in_ns gm-pub curl -sf -X POST http://127.0.0.1:5001/api/v0/id >/dev/null 2>&1 && break
  sleep 0.1
done
in_ns gm-pub curl -sf -X POST http://127.0.0.1:5001/api/v0/id >/dev/null || fail "Kubo did not start"
unset IPFS_PATH

# ---- nodes: keys, models, registration ---------------------------------------------------------
# The emoji model only N serves; R and O serve a copy under another name (so another model hash),
# so neither can take the emoji model's jobs itself.
NAMES=(relay natted origin)
for i in 0 1 2; do
  dir="$WORK/${NAMES[$i]}"
  mkdir -p "$dir"
  # The operator key first, so that init binds the content credentials to it.
  (umask 077 && printf '%s\n' "${OPERATOR_KEYS[$i]}" >"$dir/operator.key")
  "$GENMINT" --data-dir "$dir" init >"$WORK/init-${NAMES[$i]}.log" 2>&1
done
for name in relay origin; do
  mkdir -p "$WORK/$name/models/other"
  cp -r "$WORK/$name/models/default/." "$WORK/$name/models/other/"
  jq '.name = "genmint-emoji-32-other"' "$WORK/$name/models/default/genmint-model.json" \
    >"$WORK/$name/models/other/genmint-model.json"
done
EMOJI=$("$GENMINT" models hash "$WORK/natted/models/default")
OTHER=$("$GENMINT" models hash "$WORK/relay/models/other")
[ "$EMOJI" != "$OTHER" ] || fail "the copied model kept the emoji model's hash"

GENMINT_OPERATOR_KEY="$OWNER_KEY" in_ns gm-pub "$GENMINT" --data-dir "$WORK/owner" \
  contracts deploy --rpc-url "$RPC" --out "$WORK/deploy" >"$WORK/deploy.log" 2>&1 || fail "deploying the contract"
CONTRACT=$(jq -r .address "$WORK/deploy/31337.json")
send() { in_ns gm-pub cast send --quiet --rpc-url "$RPC" --private-key "$OWNER_KEY" "$@" >/dev/null; }
send "$CONTRACT" 'registerModel(bytes32,string,string,string)' "$EMOJI" genmint-emoji-32 genmint ''
send "$CONTRACT" 'registerModel(bytes32,string,string,string)' "$OTHER" genmint-emoji-32-other genmint ''
OPERATORS=()
for key in "${OPERATOR_KEYS[@]}"; do
  operator=$(cast wallet address --private-key "$key")
  OPERATORS+=("$operator")
  send "$CONTRACT" 'registerNode(address)' "$operator"
  send --value 100ether "$operator"
done
say "contract $CONTRACT; emoji model $EMOJI (only N), other model $OTHER"

# write_config NAME MODEL_DIR RPC IPFS RELAY_IP RELAY_SERVICE: a node that joins through the relay
# at RELAY_IP over TCP and QUIC (hole punching tries the addresses the relay sees on each) and
# holds a reservation on it.
write_config() {
  local relays="[]" bootstrap="[]"
  if [ -n "$5" ]; then
    relays="[\"/ip4/$5/tcp/4001/p2p/$RELAY_PEER\"]"
    bootstrap="[\"/ip4/$5/tcp/4001/p2p/$RELAY_PEER\", \"/ip4/$5/udp/4001/quic-v1/p2p/$RELAY_PEER\"]"
  fi
  cat >"$WORK/$1/genmint.toml" <<EOF
[http]
listen = "127.0.0.1:8080"

[chain]
rpc_url = "$3"
contract = "$CONTRACT"

[ipfs]
api_url = "$4"

[model]
dir = "$2"

[p2p]
listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
bootstrap = $bootstrap
relays = $relays
relay_service = $6
autonat_private_addresses = true
advert_interval_secs = 2
spot_check_interval_secs = 0

[replication]
copies = 0
EOF
}

# start_node NAME NAMESPACE
start_node() {
  GENMINT_LOG="${GENMINT_LOG:-info,libp2p_dcutr=debug}" in_ns "$2" "$GENMINT" --data-dir "$WORK/$1" node \
    >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do
    in_ns "$2" curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "node $1 did not answer /healthz"
}
api() { in_ns "$1" curl -sf "http://127.0.0.1:8080$2"; }

write_config relay models/other "$RPC" http://127.0.0.1:5001 "" true
start_node relay gm-pub
RELAY_PEER=$(api gm-pub /v1/peers | jq -r .peer_id)
write_config natted models/default http://10.77.1.1:8545 http://10.77.1.1:5001 10.77.1.1 false
write_config origin models/other http://10.77.2.1:8545 http://10.77.2.1:5001 10.77.2.1 false
start_node natted gm-nat1
start_node origin gm-nat2
NATTED_PEER=$(api gm-nat1 /v1/peers | jq -r .peer_id)
say "R $RELAY_PEER in gm-pub; N $NATTED_PEER in gm-nat1"

# wait_until WHAT SECONDS COMMAND...: polls COMMAND every half second.
wait_until() {
  local what="$1" secs="$2"
  shift 2
  for _ in $(seq $((secs * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  fail "timed out after ${secs}s waiting until $what"
}
relayed_addresses() { api "$1" /v1/peers | jq -e '.nat.relayed_addresses | length > 0'; }
serves_emoji() { api "$1" /v1/models | grep -qi "${EMOJI#0x}"; }
wait_until "N holds a reservation on R" 60 relayed_addresses gm-nat1
wait_until "O holds a reservation on R" 60 relayed_addresses gm-nat2
wait_until "R sees N's emoji model" 60 serves_emoji gm-pub
wait_until "O sees N's emoji model" 60 serves_emoji gm-nat2
reachability() { api "$1" /v1/peers | jq -e --arg r "$2" '.nat.reachability == $r'; }
wait_until "AutoNAT finds N private" 90 reachability gm-nat1 private
say "N is reached through: $(api gm-nat1 /v1/peers | jq -c .nat.relayed_addresses)"

# ---- the jobs ----------------------------------------------------------------------------------
# generate NAMESPACE PROMPT: signs and submits a job for the emoji model, waits for its token,
# checks that N's operator minted it, and prints the seconds it took.
generate() {
  local before after job
  before=$(date +%s.%N)
  in_ns "$1" "$GENMINT" --data-dir "$WORK/creator" generate "$2" --model "$EMOJI" \
    --node http://127.0.0.1:8080 --wait >"$WORK/generate-$1.log" 2>&1 || fail "job from $1 did not mint"
  after=$(date +%s.%N)
  local id
  id=$(awk '/token id \(hex\)/ {print $4}' "$WORK/generate-$1.log")
  job=$(api "$1" "/v1/jobs/$id")
  [ "$(echo "$job" | jq -r .executor)" = "$NATTED_PEER" ] || fail "job $id was not run by N: $job"
  local minted_by
  minted_by=$(echo "$job" | jq -r .minted_by | tr '[:upper:]' '[:lower:]')
  [ "$minted_by" = "$(echo "${OPERATORS[1]}" | tr '[:upper:]' '[:lower:]')" ] ||
    fail "job $id was minted by $minted_by, not by N's operator ${OPERATORS[1]}"
  awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", a - b }'
}
first=$(generate gm-pub "a red apple")
say "job 1: submitted to R (public), forwarded to N, minted by N in ${first}s"
second=$(generate gm-nat2 "a green pear")
say "job 2: submitted to O (behind NAT), forwarded to N, minted by N in ${second}s"

# DCUtR may still be at work right after the job: wait for its outcome (or a direct connection).
# N, which took the relayed connection, starts the hole punch and counts its outcome.
punch_over() {
  api gm-nat1 /v1/peers | jq -e '.nat.hole_punches_succeeded + .nat.hole_punches_failed > 0' ||
    api gm-nat2 /v1/peers | jq -e --arg n "$NATTED_PEER" 'any(.peers[]; .peer_id == $n and .connection == "direct")'
}
punch_over_in_time=yes
for _ in $(seq 60); do punch_over >/dev/null 2>&1 && break; sleep 0.5; done
punch_over >/dev/null 2>&1 || punch_over_in_time="no outcome within 30 s"
connection=$(api gm-nat2 /v1/peers | jq -r --arg n "$NATTED_PEER" \
  '.peers[] | select(.peer_id == $n) | "\(.connection) \(.addresses | map(select(startswith("/ip4/10.77.") and (contains("p2p-circuit") | not))) | join(" "))"')
punched=$(api gm-nat1 /v1/peers | jq -r '"\(.nat.hole_punches_succeeded) succeeded, \(.nat.hole_punches_failed) failed"')
reachability=$(api gm-nat1 /v1/peers | jq -r .nat.reachability)
echo "| check | result |"
echo "|---|---|"
echo "| routers | MASQUERADE, $([ "$strict" = yes ] && echo "strict (unsolicited packets reach the router)" || echo "unsolicited packets dropped") |"
echo "| N's reachability (AutoNAT) | ${reachability} |"
echo "| job 1: R (public) → N, submit to minted | ${first} s |"
echo "| job 2: O (NAT) → N, submit to minted | ${second} s |"
echo "| O's connection to N after the job | ${connection:-none} |"
echo "| N's hole punches (DCUtR) | ${punched} (${punch_over_in_time}) |"
if [ "$strict" = yes ] && [ "${connection%% *}" != relayed ]; then
  fail "with strict NATs the connection should have stayed relayed, not ${connection}"
fi
say "passed in $(($(date +%s) - started)) s"
