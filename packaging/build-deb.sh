#!/usr/bin/env bash
# Builds the rvs Debian package: rvsd and rvsadm, the systemd unit, the hugepage helper, an
# example configuration under /etc/rvs, man pages and shell completions.
#
#   packaging/build-deb.sh                 cargo build --release, then the package
#   packaging/build-deb.sh --bin-dir DIR   package the rvsd and rvsadm already in DIR
#
# Prints the path of the .deb (target/debian/rvs_VERSION_ARCH.deb). The dependencies on
# DPDK's runtime libraries are read off the binary (ldd, then dpkg -S), so the package asks
# for exactly the librte-* packages rvsd links.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=""
while [ $# -gt 0 ]; do
    case $1 in
        --bin-dir) bin_dir=$2; shift 2 ;;
        *) echo "build-deb.sh: unknown argument $1 (--bin-dir DIR)" >&2; exit 2 ;;
    esac
done
if [ -z "$bin_dir" ]; then
    cargo build --release -q -p rvs --bin rvsd -p rvsadm
    bin_dir=target/release
fi
for b in rvsd rvsadm; do
    [ -x "$bin_dir/$b" ] || { echo "build-deb.sh: no $bin_dir/$b" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=target/debian/stage
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/sbin" "$stage/usr/lib/rvs" "$stage/lib/systemd/system" \
    "$stage/etc/rvs" "$stage/etc/default" "$stage/usr/share/man/man8" "$stage/usr/share/man/man5" \
    "$stage/usr/share/doc/rvs/examples" "$stage/usr/share/bash-completion/completions" \
    "$stage/usr/share/zsh/vendor-completions"

install -m 755 "$bin_dir/rvsd" "$bin_dir/rvsadm" "$stage/usr/sbin/"
install -m 755 packaging/rvs-hugepages "$stage/usr/lib/rvs/"
install -m 644 packaging/rvsd.service "$stage/lib/systemd/system/"
install -m 644 packaging/default "$stage/etc/default/rvs"
# The example configuration: NAT over a pair of NICs (edit the devices and addresses first).
install -m 640 configs/nat.toml "$stage/etc/rvs/rvs.toml"
cp -r configs/*.toml configs/ha configs/ecmp "$stage/usr/share/doc/rvs/examples/"
install -m 644 README.md "$stage/usr/share/doc/rvs/"
"$bin_dir/rvsd" --man | gzip -9n > "$stage/usr/share/man/man8/rvsd.8.gz"
gzip -9n < packaging/rvsadm.8 > "$stage/usr/share/man/man8/rvsadm.8.gz"
gzip -9n < packaging/rvs.toml.5 > "$stage/usr/share/man/man5/rvs.toml.5.gz"
"$bin_dir/rvsd" --completions bash > "$stage/usr/share/bash-completion/completions/rvsd"
"$bin_dir/rvsd" --completions zsh > "$stage/usr/share/zsh/vendor-completions/_rvsd"
install -m 644 packaging/rvsadm.bash-completion "$stage/usr/share/bash-completion/completions/rvsadm"

# The shared libraries rvsd links, by the packages that hold them.
# (dpkg -S fails for a path it knows under another name, /usr/lib vs /lib: those are libc6's.)
depends=$(ldd "$bin_dir/rvsd" | awk '/=> \//{print $3}' | xargs -r realpath \
    | { xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 | sort -u | { grep -v '^libc6$' || true; } \
    | paste -sd, - | sed 's/,/, /g')
depends="libc6${depends:+, $depends}"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<EOF
Package: rvs
Version: $version
Architecture: $arch
Maintainer: rvs developers <rvs@localhost>
Installed-Size: $size
Depends: $depends
Recommends: keepalived, bird2
Section: net
Priority: optional
Description: userspace L4 load balancer in the LVS tradition, on DPDK
 rvsd forwards with NAT, direct routing and IP-in-IP tunnels, with the LVS schedulers,
 persistence, firewall marks, health checks, IPVS connection sync and an ipvsadm-compatible
 administration tool, rvsadm. The unit rvsd.service runs /etc/rvs/rvs.toml; it is not
 enabled on install: edit the configuration, then systemctl enable --now rvsd.
EOF
printf '/etc/rvs/rvs.toml\n/etc/default/rvs\n' > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop rvsd.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat > "$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
out="target/debian/rvs_${version}_${arch}.deb"
# RVS_DEB_COMPRESSION=none for a quick package of debug binaries (the tests).
dpkg-deb --root-owner-group "-Z${RVS_DEB_COMPRESSION:-xz}" --build "$stage" "$out" >/dev/null
echo "$out"
