#!/usr/bin/env bash
# Runs every bench scenario against a release build of Tern on loopback and prints the figures
# that go into examples/BENCHMARKS.md.
#
#   examples/run-benchmarks.sh [RUNS]        (default 5 runs per scenario)
#
# Builds `tern` and the bench tool in release mode (several minutes on 2 cores the first
# time), creates a throw-away data dir with one account, starts the server, runs the
# scenarios, and stops the server it started. Set CARGO_TARGET_DIR to reuse another build.
set -euo pipefail

runs="${1:-5}"
port="${TERN_BENCH_PORT:-18080}"
startup_port=$((port + 1))
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"

cargo build --release --bin tern --example bench
tern="$target_dir/release/tern"
bench="$target_dir/release/examples/bench"

data_dir="$(mktemp -d /tmp/tern-bench.XXXXXX)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$data_dir"
}
trap cleanup EXIT

user="bench@example.test"
password="bench-password-$$"
"$tern" account create "$user" --password "$password" --data-dir "$data_dir" >/dev/null

echo "## start-up and idle RSS ($runs runs, existing data dir)"
"$bench" --session-url "http://127.0.0.1:$startup_port/.well-known/jmap" --user "$user" --password "$password" \
    --runs "$runs" --server-cmd "$tern serve --data-dir $data_dir --http 127.0.0.1:$startup_port" startup

"$tern" serve --data-dir "$data_dir" --http "127.0.0.1:$port" >"$data_dir/server.log" 2>&1 &
server_pid=$!
session_url="http://127.0.0.1:$port/.well-known/jmap"
for _ in $(seq 1 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.01
done
common=(--session-url "$session_url" --user "$user" --password "$password" --runs "$runs")

echo "## idle RSS after start"
"$bench" --session-url "$session_url" --server-pid "$server_pid" rss
echo "## Core/echo latency, one keep-alive connection"
"$bench" "${common[@]}" --requests 20000 echo-latency
echo "## Core/echo throughput, 32 connections"
"$bench" "${common[@]}" --connections 32 --duration 10 echo-throughput
echo "## 1 MB upload + download"
"$bench" "${common[@]}" --iterations 100 blob
echo "## RSS after the load"
"$bench" --session-url "$session_url" --server-pid "$server_pid" rss
