#!/bin/sh
# Customizes the mailman3 layer; $1 is the merged root. Mailman 3 core as Debian ships
# it, trimmed for test hosts: REST on the loopback only (the panel reaches it through an
# SSH tunnel), and only the runners a post needs (LMTP in, pipeline, out, virgin, REST),
# which brings the start from ~700 MB to about half and REST up in ~10 s.
set -eu
R="$1"
cfg="$R/etc/mailman3/mailman.cfg"
sed -i 's/^hostname: localhost$/hostname: 127.0.0.1/' "$cfg"
grep -q '^hostname: 127.0.0.1$' "$cfg" || { echo "mailman3-customize: no [webservice] hostname" >&2; exit 1; }
cat >> "$cfg" <<'CONF'

# Konbit test hosts: runners no test needs stay off.
[runner.archive]
start: no

[runner.bounces]
start: no

[runner.digest]
start: no

[runner.nntp]
start: no

[runner.retry]
start: no

[runner.task]
start: no
CONF
find "$R/var/log" -type f -exec truncate -s 0 {} +
