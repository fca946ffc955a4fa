#!/bin/sh
# Runs as PID 1 of a fresh PID/mount/net/UTS/IPC namespace set (started by unshare from
# panel/testhosts/lab.py), still seeing the machine's own root: builds the host's root
# file system, waits for the veth end the lab moves in, then becomes the host's init.
# Inputs come from TH_* environment variables set by lab.py.
set -eu
M="$TH_MERGED"

mount -t overlay overlay -o "lowerdir=$TH_LOWER,upperdir=$TH_UPPER,workdir=$TH_WORK" "$M"
if [ -n "${TH_HOME_IMAGE:-}" ]; then
    # Web homes on their own btrfs file system with quotas (accounts' disk quotas); the
    # loop device goes with this mount namespace (autoclear).
    if [ ! -f "$TH_HOME_IMAGE" ]; then
        truncate -s 1G "$TH_HOME_IMAGE"
        mkfs.btrfs -q "$TH_HOME_IMAGE" >/dev/null
    fi
    mkdir -p "$M/var/www/konbit"
    mount -o loop "$TH_HOME_IMAGE" "$M/var/www/konbit"
    btrfs quota enable "$M/var/www/konbit"
fi
mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
mount -t tmpfs -o mode=755,nosuid,size=1m dev "$M/dev"
for d in null zero full random urandom tty; do
    : > "$M/dev/$d"
    mount --bind "/dev/$d" "$M/dev/$d"
done
mkdir -m 755 "$M/dev/pts"
mkdir -m 1777 "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"
ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"
ln -s /proc/self/fd/1 "$M/dev/stdout"
ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$M/dev/shm"
mount -t tmpfs -o mode=755,nosuid,nodev run "$M/run"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$M/sys"

hostname "$TH_NAME"
echo "$TH_NAME" > "$M/etc/hostname"
# One /etc/hosts per lab, rewritten in place by the lab as hosts come and go.
mount --bind -o ro "$TH_HOSTS_FILE" "$M/etc/hosts"
# No DNS inside a test host: no query may leave it.
rm -f "$M/etc/resolv.conf"
echo "nameserver 127.0.0.1" > "$M/etc/resolv.conf"
install -d -m 700 "$M/root/.ssh"
install -m 600 "$TH_KEYS_FILE" "$M/root/.ssh/authorized_keys"
install -D -m 755 "$TH_FILES/init.sh" "$M/usr/local/sbin/konbit-testhost-init"
install -D -m 755 "$TH_FILES/systemctl" "$M/usr/local/bin/systemctl"

# The lab moves our eth0 in right after unshare(2); it is usually there already.
i=0
until ip link show eth0 >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 2000 ]; then echo "enter: eth0 never appeared" >&2; exit 1; fi
    sleep 0.005
done
ip link set lo up
ip addr add "$TH_ADDRESS" dev eth0
ip link set eth0 up

# shellcheck disable=SC2086 # TH_SERVICES is a word list on purpose
exec chroot "$M" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb \
    /usr/bin/tini -s -g -- /usr/local/sbin/konbit-testhost-init "$TH_NAME" $TH_SERVICES
