#!/usr/bin/env bash
# Instructions per packet on the core's main paths, counted by callgrind: repeatable on a noisy
# machine, so a change's cost can be compared between commits. Only the measured function is
# counted (frames are built outside it).
#   benches/callgrind.sh [N]      N frames per case (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
cargo build --release -q -p rvs-core --example callgrind_paths
bin=target/release/examples/callgrind_paths
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-14s %14s %12s\n' case instructions per-packet
for c in nat-in nat-reply syn dr-in fnat-in fnat-reply fnat-pp-in fnat-pp-reply nat6-in tun-in nat-in-offload syn-offload; do
    valgrind --tool=callgrind --toggle-collect='*measure*' --callgrind-out-file="$out/$c" "$bin" "$c" "$N" >/dev/null 2>"$out/$c.log"
    ir=$(grep -m1 '^summary:' "$out/$c" | awk '{print $2}')
    printf '%-14s %14s %12.1f\n' "$c" "$ir" "$(echo "$ir / $N" | bc -l)"
done
