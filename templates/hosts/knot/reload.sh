# Managed by Konbit: make Knot serve the konbit configuration now.
# $1: "restart" (where Knot listens changed, which a reload does not apply), "reload" (the
# configuration changed) or "zones"; then the zones whose file changed, loaded again
# whatever their mtime says (Knot skips a zone file whose mtime it has already seen, and
# two reconciles in one second stage files with the same mtime), blocking: this ends
# once they serve.  knotc is given the socket: without it, it parses the whole
# configuration first (0.1 s at 2,000 zones).
set -u
what="$1"
shift
ctl() { knotc -s /run/knot/knot.sock "$@"; }
up() { ctl status >/dev/null 2>&1; }
await() {
    i=0
    while :; do
        if [ "$1" = up ]; then up && return 0; else up || return 0; fi
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then echo "knot is not $1 after 10 s" >&2; return 1; fi
        sleep 0.05
    done
}
if [ "$what" = restart ] && up; then
    ctl stop >/dev/null || exit
    await down || exit
fi
if ! up; then
    systemctl start knot || exit
    await up || exit
elif [ "$what" = reload ]; then
    ctl reload >/dev/null || exit
fi
if [ "$#" -gt 0 ]; then
    ctl -b -t 60 zone-reload "$@" >/dev/null
fi
