# Managed by Konbit: kzonecheck every zone file this reconcile stages (run with the staged
# tree in place of the live one).  The others are hard links to the live generation's
# files (more than one link), checked when they went live: 2,000 zones at ~6 ms each
# would make every change wait twelve seconds.  Every refused zone is named with its
# errors; a first apply checks on every core.
cd /etc/konbit/live/knot/zones 2>/dev/null || exit 0
find . -maxdepth 1 -type f -name '*.zone' -links 1 -print0 |
    xargs -0 -r -n 100 -P "$(nproc)" sh -c '
status=0
for f; do
    base=${f#./}
    base=${base%.zone}
    id=${base%%-*}
    zone=${base#*-}
    if ! out=$(kzonecheck -v -o "$zone" "$f" 2>&1); then
        why=$(printf "%s\n" "$out" | sed -n -e "s/^error: //" -e "s/, file [^,]*,/,/" -e "/^\[/p" |
            head -n 3 | tr "\n" ";" | sed -e "s/;\$//" -e "s/;/; /g")
        printf "zone %s (%s): %s\n" "$id" "$zone" "$why" >&2
        status=1
    fi
done
exit $status' konbit
