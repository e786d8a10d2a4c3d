#!/usr/bin/env bash
# rvs in your CI: replay a capture through your config, check every frame each port sends
# against the expected captures, keep the run's numbers as JSON, and compare the speed with a
# previous run. Run from the repository's root; it works in ci/ (created from the demo on the
# first run: the demo's traffic and config, the expected captures recorded from a first replay,
# and a first benchmark report to compare with).
set -euo pipefail
cd "$(dirname "$0")/.."
./dpdk/setup.sh
cargo build --release -q --workspace --bins
B=target/release
CI=${RVS_CI_DIR:-ci}
mkdir -p "$CI"
CI=$(cd "$CI" && pwd)

if [ ! -f "$CI/lb.toml" ]; then
    # Bootstrap: your capture and config go here instead.
    "$B/rvsd" --demo --no-huge --flows 2000 --out "$CI/demo" >/dev/null
    cp "$CI/demo/demo-in.pcap" "$CI/capture.pcap"
    cp "$CI/demo/demo-empty.pcap" "$CI/empty.pcap"
    sed -e "s#@DIR@/demo-in.pcap#$CI/capture.pcap#; s#@DIR@/demo-empty.pcap#$CI/empty.pcap#" \
        -e "s#@DIR@#$CI#g; s#@CPU@#1#; s#@MEMORY@#no-huge#" configs/demo.toml > "$CI/lb.toml"
    "$B/rvs-replay" --config "$CI/lb.toml" >/dev/null
    cp "$CI/demo-out-inside.pcap" "$CI/expected-inside.pcap"
    cp "$CI/demo-out-outside.pcap" "$CI/expected-outside.pcap"
    "$B/rvs-bench" --pcap "$CI/capture.pcap" --config "$CI/lb.toml" --seconds 2 --out "$CI/first" >/dev/null
    cp "$CI/first/report.json" "$CI/baseline-report.json"
fi

# 1. The verdict: exit 1 and the first difference (frame, field, both frames) if a port sent
#    anything else; exit 2 if an input is unusable.
"$B/rvs-replay" --config "$CI/lb.toml" \
    --expect inside="$CI/expected-inside.pcap" --expect outside="$CI/expected-outside.pcap" \
    --report-json "$CI/run.json" | tail -n 2

# 2. The run's numbers, for any check a pipeline wants: here, no drop at all.
python3 - "$CI/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["schema"] == "rvs-run-report" and r["schema_version"] == 1
print(f'forwarded {r["totals"]["forwarded"]} frames, drops {r["drops"] or "none"}')
sys.exit(1 if r["drops"] else 0)
PY

# 3. The speed, as a ratio to the bare forwarder on the same capture, against the last report.
#    Shared CI machines are noisy: allow a wide margin (measured here: +-20% between 2 s runs).
"$B/rvs-bench" --pcap "$CI/capture.pcap" --config "$CI/lb.toml" --seconds 2 --out "$CI/bench" | tail -n 3
"$B/rvs-bench" --compare "$CI/baseline-report.json" "$CI/bench/report.json" --max-drop 30
