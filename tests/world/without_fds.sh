#!/usr/bin/env bash
# without_fds.sh CMD...: run CMD with only stdin, stdout and stderr open. The test world's daemons
# (zfs-fuse, the image server) start through it: a daemon that inherited a lock held around a test
# run (flock(1)) would hold that lock for as long as it lives.
for f in "/proc/$$/fd"/*; do
    n=${f##*/}
    if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi
done
exec "$@"
