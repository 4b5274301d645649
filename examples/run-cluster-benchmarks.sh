#!/usr/bin/env bash
# The cluster figures of examples/BENCHMARKS.md (issue 14): three Tern nodes on one
# single-process FoundationDB (memory engine) on loopback, and one embedded node side by side
# in the same run, driven by the bench tool.
#
#   examples/run-cluster-benchmarks.sh [RUNS]        (default 5 runs per scenario)
#
# Needs FoundationDB 7.3: ../shared/fdb (or TERN_FDB_DIR) with bin/fdb-start-local, and dnsmasq. Builds
# `tern` (with --features foundationdb) and the bench tool in release mode; set
# CARGO_TARGET_DIR to reuse another build.
set -euo pipefail

runs="${1:-5}"
cd "$(dirname "$0")/.."
fdb_dir=$(cd "${TERN_FDB_DIR:-../shared/fdb}" && pwd)
export LIBRARY_PATH="$fdb_dir/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$fdb_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
target_dir="${CARGO_TARGET_DIR:-target}"
# TERN_BENCH_NO_BUILD=1: use the binaries already in $target_dir/release as they are.
[ -n "${TERN_BENCH_NO_BUILD:-}" ] || cargo build --release --features foundationdb --bin tern --example bench
tern="$target_dir/release/tern"
bench="$target_dir/release/examples/bench"

work="$(mktemp -d /tmp/tern-cluster-bench.XXXXXX)"
pids=()
dnsmasq_pid=
cleanup() {
    for pid in "${pids[@]}" $dnsmasq_pid; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$fdb_dir/bin/fdb-stop-local" "$work/fdb" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
eval "$("$fdb_dir/bin/fdb-start-local" "$work/fdb" | grep '^cluster_file=')"
# A local DNS server that answers the bench's domains at once (NXDOMAIN), as the single-node
# figures use: delivery asks DNS for SPF, DKIM and DMARC, and a dead resolver would make every
# message wait for its timeouts (that measures the resolver, not the store).
dns_port=15353
/usr/sbin/dnsmasq --no-daemon --port="$dns_port" --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --local=/example/ --local=/test/ >"$work/dnsmasq.log" 2>&1 &
dnsmasq_pid=$!

node_config() { # name http smtp
    cat > "$work/$1.toml" <<EOF
[server]
data_dir = "$work/$1"
http = "127.0.0.1:$2"
memory_trim_interval_seconds = 0
[store]
backend = "foundationdb"
fdb_cluster_file = "$cluster_file"
[cluster]
enabled = true
node_name = "$1"
[admin]
enabled = false
[jmap]
max_concurrent_upload = 8
max_concurrent_requests = 16
[smtp]
listen = "127.0.0.1:$3"
[dns]
nameserver = "127.0.0.1:$dns_port"
[outbound]
enabled = false
EOF
}
wait_port() { for _ in $(seq 1 1000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.01; done; }
start_node() { # name http
    "$tern" serve --config "$work/$1.toml" >"$work/$1.log" 2>&1 &
    pids+=($!)
    wait_port "$2"
}

node_config a 18181 12681
node_config b 18182 12682
node_config c 18183 12683
user="bench@cluster.test"
password="bench-password-$$"
"$tern" account create "$user" --password "$password" --config "$work/a.toml" >/dev/null
# cluster-push creates a Mailbox per round: its own account, so the mail account stays small.
push_user="push@cluster.test"
"$tern" account create "$push_user" --password "$password" --config "$work/a.toml" >/dev/null
start_node a 18181
start_node b 18182
start_node c 18183
url() { echo "http://127.0.0.1:$1/.well-known/jmap"; }
auth=(--user "$user" --password "$password")
push_auth=(--user "$push_user" --password "$password")

echo "## commit on node a (the owner) → StateChange on a WebSocket at node b"
"$bench" --session-url "$(url 18181)" "${push_auth[@]}" --runs "$runs" --requests 200 \
    --observe-url http://127.0.0.1:18182 cluster-push

echo "## the same request at the owner (a) and at a non-owner (b, forwarded): Core/echo"
"$bench" --session-url "$(url 18181)" "${auth[@]}" --runs "$runs" --requests 5000 echo-latency
"$bench" --session-url "$(url 18182)" "${auth[@]}" --runs "$runs" --requests 5000 echo-latency

echo "## Email/import, 20 KB messages, 8 clients, through node a (FoundationDB)"
"$bench" --session-url "$(url 18181)" "${auth[@]}" --runs 1 --connections 8 \
    --message-size 20000 --messages 3000 mail-populate

echo "## SMTP ingress, 10 KB, 16 sessions spread over the three nodes (delivered rate)"
"$bench" --session-url "$(url 18181)" "${auth[@]}" --runs 5 --connections 16 \
    --message-size 10000 --messages 2000 \
    --smtp 127.0.0.1:12681,127.0.0.1:12682,127.0.0.1:12683 smtp-ingress

echo "## Email/query inMailbox on the Inbox, which the SMTP runs filled (5 x 2,000 messages)"
"$bench" --session-url "$(url 18181)" "${auth[@]}" --runs "$runs" --requests 200 mail-query

echo "## failover: kill -9 of the owner → first write through node b (10 runs)"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$bench" --session-url "$(url 18181)" "${push_auth[@]}" --runs 10 \
    --server-cmd "$tern serve --config $work/a.toml" \
    --claim-cmd "$tern cluster move $push_user a --config $work/a.toml" \
    --observe-url http://127.0.0.1:18182 failover

echo "## side by side: one embedded node, same scenarios"
cat > "$work/embedded.toml" <<EOF
[server]
data_dir = "$work/embedded"
http = "127.0.0.1:18190"
memory_trim_interval_seconds = 0
[admin]
enabled = false
[jmap]
max_concurrent_upload = 8
max_concurrent_requests = 16
[smtp]
listen = "127.0.0.1:12690"
[dns]
nameserver = "127.0.0.1:$dns_port"
[outbound]
enabled = false
EOF
"$tern" account create "$user" --password "$password" --config "$work/embedded.toml" >/dev/null
"$tern" serve --config "$work/embedded.toml" >"$work/embedded.log" 2>&1 &
pids+=($!)
wait_port 18190
"$bench" --session-url "$(url 18190)" "${auth[@]}" --runs "$runs" --requests 5000 echo-latency
"$bench" --session-url "$(url 18190)" "${auth[@]}" --runs 1 --connections 8 \
    --message-size 20000 --messages 3000 mail-populate
"$bench" --session-url "$(url 18190)" "${auth[@]}" --connections 16 \
    --message-size 10000 --messages 2000 --runs 5 --smtp 127.0.0.1:12690 smtp-ingress
"$bench" --session-url "$(url 18190)" "${auth[@]}" --runs "$runs" --requests 200 mail-query
