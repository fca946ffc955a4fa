#!/bin/sh
# mmdebstrap --customize-hook for the base layer; $1 is the new root file system.
# Makes the tree a neutral template: no host keys, small MariaDB redo log, postfix
# config old enough to be read at once.
set -eu
R="$1"

# Host keys are made per host on first boot (init.sh); only ed25519 is used.
rm -f "$R"/etc/ssh/ssh_host_*
cat > "$R/etc/ssh/sshd_config.d/konbit-testhost.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
UseDNS no
CONF

# MariaDB makes a 96 MB redo log by default: every db host would copy it up.
# Start the server once with a smaller size so it resizes the log here.
cat > "$R/etc/mysql/mariadb.conf.d/99-konbit-testhost.cnf" <<'CONF'
[mysqld]
innodb_log_file_size = 8M
CONF
# shellcheck disable=SC2016 # expanded inside the chroot
chroot "$R" sh -eu -c '
    install -d -o mysql -g mysql /run/mysqld
    sock=/run/mysqld/konbit-build.sock
    mariadbd --user=mysql --skip-networking --socket=$sock >/tmp/mariadbd-build.log 2>&1 &
    pid=$!
    i=0
    until mariadb-admin --socket=$sock ping >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 300 ]; then cat /tmp/mariadbd-build.log >&2; exit 1; fi
        kill -0 $pid 2>/dev/null || { cat /tmp/mariadbd-build.log >&2; exit 1; }
        sleep 0.1
    done
    mariadb-admin --socket=$sock shutdown
    wait $pid
    rm -f /tmp/mariadbd-build.log
    rm -rf /run/mysqld
'
size=$(stat -c %s "$R/var/lib/mysql/ib_logfile0")
if [ "$size" -gt 16777216 ]; then
    echo "base-customize: MariaDB redo log still $size bytes" >&2
    exit 1
fi

# Postfix ignores a main.cf younger than ~1 s and retries in 300 ms steps.
touch -d '2000-01-01 00:00:00' "$R/etc/postfix/main.cf" "$R/etc/postfix/master.cf"

# Names and logs of the build machine must not leak into hosts.
: > "$R/etc/hostname"
find "$R/var/log" -type f -exec truncate -s 0 {} +
rm -rf "$R/tmp/"* "$R/var/tmp/"*
# mmdebstrap reports cleaning the apt cache, yet on a machine with Docker-style apt
# snippets the .debs and lists were seen to stay (~250 MB): drop them here.
rm -f "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin
find "$R/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
