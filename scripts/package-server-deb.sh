#!/usr/bin/env bash
# Builds the vidsync-server .deb from a compiled binary, with dpkg-deb alone:
#   scripts/package-server-deb.sh BINARY OUT_DIR
# The package: /usr/bin/vidsync-server (debug info stripped), the systemd
# unit (runs as user `vidsync`, data in /var/lib/vidsync), the settings file
# /etc/vidsync/server.env (a conffile: every line commented out), and the
# maintainer scripts in packaging/deb/server/. DEB_COMPRESSION=gzip makes a
# quicker, larger package (the test uses it); the default is xz.
set -euo pipefail

bin=${1:?usage: $0 BINARY OUT_DIR}
out=${2:?usage: $0 BINARY OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
arch=$(dpkg --print-architecture)
[ -x "$bin" ] || { echo "package-server-deb: $bin is not an executable" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/vidsync-server"

install -D -m 0755 "$bin" "$pkg/usr/bin/vidsync-server"
strip --strip-debug "$pkg/usr/bin/vidsync-server"
install -D -m 0644 "$root/packaging/systemd/vidsync-server.service" \
    "$pkg/usr/lib/systemd/system/vidsync-server.service"
install -D -m 0640 "$root/packaging/systemd/server.env.example" "$pkg/etc/vidsync/server.env"
install -D -m 0644 "$root/packaging/nginx/vidsync.conf" \
    "$pkg/usr/share/doc/vidsync-server/examples/nginx-vidsync.conf"
install -D -m 0644 "$root/packaging/systemd/server.env.example" \
    "$pkg/usr/share/doc/vidsync-server/examples/server.env.example"

install -d "$pkg/DEBIAN"
install -m 0755 "$root/packaging/deb/server/postinst" "$root/packaging/deb/server/prerm" \
    "$root/packaging/deb/server/postrm" "$pkg/DEBIAN/"
echo "/etc/vidsync/server.env" > "$pkg/DEBIAN/conffiles"
installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
# The libraries the binary links, as dpkg-shlibdeps would find them.
libc=$(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: vidsync-server
Version: $version
Architecture: $arch
Maintainer: Vidsync <vidsync@localhost>
Installed-Size: $installed_kb
Depends: libc6 (>= $libc), libgcc-s1, passwd
Section: net
Priority: optional
Description: Vidsync server: live folder sync through your own host
 The server of Vidsync: each project's event log and file content over
 HTTP and Socket.IO on one port, with its data in SQLite and files under
 /var/lib/vidsync. Runs as the system user vidsync from a systemd unit;
 optional built-in TLS. Make a user's token with
 sudo -u vidsync vidsync-server user add NAME --data-dir /var/lib/vidsync
CONTROL

mkdir -p "$out"
deb="$out/vidsync-server_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
