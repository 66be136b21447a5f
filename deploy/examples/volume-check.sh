#!/bin/sh
# volume-check.sh: an example understudy pre_promote hook. It refuses a
# promotion unless the daemon's data volume is mounted here, read-write, and
# holds the files that prove it is the right volume (SFTPGo's database).
# deploy/examples/sftpgo-cold.yaml uses it; docs/sftpgo.md explains the layout.
#
#   volume-check.sh [--mount] MOUNTPOINT [FILE...]
#
#   MOUNTPOINT  absolute path of the volume's mount point, e.g. /srv/sftpgo
#   FILE        paths relative to MOUNTPOINT that must exist, e.g.
#               state/sftpgo.db. SFTPGo initializes a missing database
#               when it starts (data_provider.update_mode 0, its default):
#               on a wrong volume it would serve with no users at all
#   --mount     when MOUNTPOINT is not mounted, ask systemd to mount it
#               (`systemctl start <escaped path>.mount`, an /etc/fstab entry
#               with noauto), then check; a refused promotion unmounts what
#               this script mounted
#
# Exit 0: ok, one line on stdout. Exit 1: refused, one line on stderr, which
# understudy puts in its log and history (US_E_HOOK_VETO). Exit 2: bad usage.
#
# The agent runs hooks as its own user (understudy), inside its systemd
# sandbox: this script only reads (mountpoint, findmnt, test -e), and with
# --mount asks systemd (polkit must let user understudy start and stop the
# .mount unit, systemd/polkit/50-understudy.rules). The agent's user must be
# able to look up each FILE: search (x) permission on the directories on the
# way, e.g. /srv/sftpgo/state mode 0711.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL

mounted_here=""

refuse() {
  # Leave nothing behind on a node that is not becoming primary.
  if [ -n "$mounted_here" ]; then systemctl stop "$mounted_here" >/dev/null 2>&1; fi
  printf 'refusing promotion: %s\n' "$*" >&2
  exit 1
}

usage() {
  printf 'usage: volume-check.sh [--mount] MOUNTPOINT [FILE...]\n' >&2
  exit 2
}

mount_it=no
if [ "${1-}" = "--mount" ]; then
  mount_it=yes
  shift
fi
[ $# -ge 1 ] || usage
mp=$1
shift
case $mp in
  /) usage ;;
  /*) ;;
  *) usage ;;
esac
# Trailing slashes would make mountpoint/findmnt and the unit name disagree.
while [ "${mp%/}" != "$mp" ]; do mp=${mp%/}; done
for f in "$@"; do
  case $f in
    /* | ../* | */../* | */.. | ..) usage ;;
  esac
done

[ -d "$mp" ] || refuse "$mp does not exist or is not a directory"

if ! mountpoint -q "$mp"; then
  [ "$mount_it" = yes ] || refuse "$mp is not mounted (volume not attached, or its mount failed); nothing to serve from"
  unit=$(systemd-escape -p --suffix=mount "$mp") || refuse "cannot name the mount unit of $mp"
  if ! out=$(systemctl start "$unit" 2>&1); then
    refuse "$mp is not mounted and 'systemctl start $unit' failed: $(printf '%s' "$out" | tr '\n' ' ')"
  fi
  mounted_here=$unit
  mountpoint -q "$mp" || refuse "$mp is still not mounted after 'systemctl start $unit'"
fi

source=$(findmnt -n -o SOURCE --mountpoint "$mp" | tail -n 1)
options=$(findmnt -n -o OPTIONS --mountpoint "$mp" | tail -n 1)
case ",$options," in
  *,ro,*) refuse "$mp ($source) is mounted read-only ($options)" ;;
esac

for f in "$@"; do
  [ -e "$mp/$f" ] || refuse "$mp ($source) has no $f: the wrong volume, an empty one, or not readable by $(id -un)"
done

printf 'ok: %s mounted read-write from %s%s\n' "$mp" "$source" "${1+, $* present}"
exit 0
