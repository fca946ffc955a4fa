#!/bin/sh
# PID 2 of a test host (under tini): syslog, sshd, then the role services in parallel
# through their Debian init scripts; /run/ready or /run/failed tells the lab how it went.
# Usage: konbit-testhost-init NAME SERVICE...  (SERVICE: nginx, apache2, php-fpm, postfix,
# dovecot, mariadb, postgresql, or any /etc/init.d script name)
name="$1"
shift

# /run is a fresh tmpfs: make what systemd-tmpfiles would (runtime dirs of packages).
mkdir -m 1777 /run/lock
install -m 664 -g utmp /dev/null /run/utmp
cat /usr/lib/tmpfiles.d/*.conf /etc/tmpfiles.d/*.conf 2>/dev/null |
    while read -r type path mode user group _; do
        case "$type:$path" in
            [dD]:/run/systemd*) ;;
            [dD]:/run/*)
                mkdir -p "$path"
                [ "$mode" = - ] || chmod "$mode" "$path"
                [ "$user" = - ] || chown "$user" "$path"
                [ "$group" = - ] || chgrp "$group" "$path" ;;
        esac
    done

busybox syslogd -O /var/log/syslog

# First boot of this upper dir: what must differ between hosts made from one base.
if [ ! -e /var/lib/konbit-testhost/first-boot-done ]; then
    if [ -e /etc/postfix/main.cf ]; then
        echo "$name.test" > /etc/mailname
        postconf -e "myhostname = $name.test" \
            "mydestination = \$myhostname, $name, localhost.localdomain, localhost"
        # Postfix will not read a main.cf younger than ~1 s: backdate it.
        touch -d '2000-01-01 00:00:00' /etc/postfix/main.cf
    fi
    mkdir -p /var/lib/konbit-testhost
    : > /var/lib/konbit-testhost/first-boot-done
fi
[ -e /etc/ssh/ssh_host_ed25519_key ] \
    || ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd
if ! /usr/sbin/sshd; then
    echo "sshd" > /run/failed
    exec sleep infinity
fi

resolve() {
    case "$1" in
        php-fpm)
            for f in /etc/init.d/php*-fpm; do [ -x "$f" ] && { echo "$f"; return; }; done
            echo /etc/init.d/php-fpm ;;
        *) echo "/etc/init.d/$1" ;;
    esac
}

mkdir -p /run/konbit-testhost
for svc in "$@"; do
    (
        script=$(resolve "$svc")
        if "$script" start >"/var/log/konbit-testhost-$svc.log" 2>&1; then
            : > "/run/konbit-testhost/$svc.ok"
        else
            echo "$svc: $script start failed with $?" > "/run/konbit-testhost/$svc.failed"
        fi
    ) &
done
wait

if ls /run/konbit-testhost/*.failed >/dev/null 2>&1; then
    for f in /run/konbit-testhost/*.failed; do
        cat "$f"
        svc=$(basename "$f" .failed)
        tail -n 20 "/var/log/konbit-testhost-$svc.log" | sed "s/^/  $svc: /"
    done > /run/failed.tmp
    mv /run/failed.tmp /run/failed
else
    : > /run/ready
fi
exec sleep infinity
