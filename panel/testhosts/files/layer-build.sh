#!/bin/sh
# Builds one extra layer (for instance mailman3) on top of lower layers, in a private mount
# namespace (run under `unshare --mount`). The upper dir of the overlay becomes the layer.
# Env: TH_LOWER (colon list, top first), TH_UPPER, TH_WORK, TH_MERGED, TH_PACKAGES
# (space separated), TH_CUSTOMIZE (optional script, run on the host with $1 = merged root).
set -eu
M="$TH_MERGED"
mount -t overlay overlay -o "lowerdir=$TH_LOWER,upperdir=$TH_UPPER,workdir=$TH_WORK" "$M"
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/var/lib/apt/lists"
mkdir -p "$M/var/lib/apt/lists/partial"
mount --bind /etc/resolv.conf "$M/etc/resolv.conf" 2>/dev/null \
    || cp /etc/resolv.conf "$M/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$M/usr/sbin/policy-rc.d"
chmod 755 "$M/usr/sbin/policy-rc.d"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
chroot "$M" apt-get -q update
# shellcheck disable=SC2086 # word list on purpose
chroot "$M" apt-get -q -y --no-install-recommends install $TH_PACKAGES
chroot "$M" apt-get clean
if [ -n "${TH_CUSTOMIZE:-}" ]; then sh "$TH_CUSTOMIZE" "$M"; fi
rm -f "$M/usr/sbin/policy-rc.d"
