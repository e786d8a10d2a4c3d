#!/usr/bin/env bash
# Prepares a Debian 12 machine to build, run and test rvs. Idempotent, and silent when
# everything is already in place.
#   - installs the Debian packages the build and the tests need (DPDK 22.11, libclang for
#     bindgen, pkg-config, libpcap, valgrind, and the peers used by end-to-end tests);
#   - reserves 2 MB hugepages (RVS_HUGEPAGES, default 512) and mounts hugetlbfs on
#     /dev/hugepages where the kernel allows it; otherwise says that runs use --no-huge.
# Run it as root (or with sudo available).
set -euo pipefail

PACKAGES=(libdpdk-dev libclang-dev clang pkg-config libpcap-dev build-essential valgrind
          iproute2 iputils-ping ethtool tcpdump curl python3 openssl fonts-dejavu-core
          keepalived tshark bird2 nginx-light wrk)
HUGEPAGES=${RVS_HUGEPAGES:-512}

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "dpdk/setup.sh: run as root (or install sudo): packages and hugepages need it" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "dpdk/setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "dpdk/setup.sh: cargo not found: install the Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi

# Hugepages: reserve, then mount (the same script the rvsd unit runs); both can be refused in
# containers, and then runs use --no-huge.
"${SUDO[@]}" env RVS_HUGEPAGES="$HUGEPAGES" "$(dirname "$0")/../packaging/rvs-hugepages"
