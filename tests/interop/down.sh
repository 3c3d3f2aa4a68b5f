#!/usr/bin/env bash
# Tear the interop mail world down: stop every daemon by the PID it recorded,
# wait, SIGKILL whatever is still inside the namespace, delete the namespace,
# /etc/netns/<ns> and the scratch folder. Safe to run on a half-built world
# or on none at all.
#
#   bash tests/interop/down.sh          (KEEP_WORLD=1 keeps the scratch folder)
set -uo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || die "must run as root"

WORLD=$(world_dir || true)
ns_up() { ip netns list | grep -qw "^$SC_NS"; }

if [ -n "$WORLD" ] && [ -d "$WORLD/run" ]; then
    pidfiles=(
        "$WORLD/run/postfix/spool/pid/master.pid"
        "$WORLD/run/postfix-oracle/spool/pid/master.pid"
        "$WORLD/run/exim-target/exim.pid"
        "$WORLD/run/exim-cpanel/exim.pid"
        "$WORLD/run/exim-nullreject/exim.pid"
        "$WORLD/run/postgrey/postgrey.pid"
        "$WORLD/run/unbound/unbound.pid"
        "$WORLD/run/tarpit/tarpit.pid"
    )
    pids=()
    for f in "${pidfiles[@]}"; do
        [ -s "$f" ] || continue
        pid=$(tr -dc '0-9' < "$f")
        [ -n "$pid" ] || continue
        # only a process that lives in our namespace is ours to kill
        if ns_up && ip netns pids "$SC_NS" 2>/dev/null | grep -qx "$pid"; then
            kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    for _ in $(seq 1 60); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
fi

# whatever is left inside the namespace (Postfix children, Exim forks) is ours
if ns_up; then
    for i in $(seq 1 60); do
        left=$(ip netns pids "$SC_NS" 2>/dev/null)
        [ -z "$left" ] && break
        [ "$i" = 1 ] && kill -TERM $left 2>/dev/null
        sleep 0.1
    done
    left=$(ip netns pids "$SC_NS" 2>/dev/null)
    if [ -n "$left" ]; then
        log "SIGKILL stragglers: $left"
        kill -KILL $left 2>/dev/null
        for _ in $(seq 1 30); do
            [ -z "$(ip netns pids "$SC_NS" 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    ip netns del "$SC_NS" || log "could not delete namespace $SC_NS"
fi
rm -rf "/etc/netns/$SC_NS"
# the /run/netns self-mount that our `ip netns add` made, once no namespace is left
if [ -f "$SC_STATE_DIR/$SC_NS.netns-mount" ]; then
    if [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
        while mountpoint -q /run/netns; do umount /run/netns || break; done
    fi
    rm -f "$SC_STATE_DIR/$SC_NS.netns-mount"
fi

if [ -n "$WORLD" ] && [ "${KEEP_WORLD:-0}" != 1 ]; then
    case "$WORLD" in
        /tmp/scworld.*|/tmp/tmp.*) rm -rf "$WORLD" ;;
        *) log "scratch folder $WORLD not under /tmp/scworld.*: left in place" ;;
    esac
elif [ -n "$WORLD" ]; then
    log "kept $WORLD"
fi
rm -f "$SC_POINTER"
log "world $SC_NS is down"
