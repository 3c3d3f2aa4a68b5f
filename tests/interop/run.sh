#!/usr/bin/env bash
# Interop test: build sendercheck, bring the mail world up, ask the Exim and
# Postfix oracles and sendercheck about every sender in matrix.csv, compare,
# prove the valiases fix, and tear the world down again, whatever happens.
#
#   bash tests/interop/run.sh                 (from the repo root, as root)
#   bash tests/interop/run.sh --oracle-only   (no sendercheck: the world and its oracles)
#
# Environment: SENDERCHECK_BIN=path skips `cargo build --release`;
# SC_OUT=dir keeps the outputs (report.json, fixes/, oracle.json) there;
# SC_NS=name picks the namespace (default scworld).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
cd "$HERE/../.."                 # the repo root: matrix path and target/ are relative to it

oracle_only=
case "${1:-}" in
    --oracle-only) oracle_only=--oracle-only ;;
    "") ;;
    *) die "usage: $0 [--oracle-only]" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
start=$(date +%s)

# mail daemons running before we start are not ours; after teardown there must be no others
daemons() {
    { pgrep -x master; pgrep -x qmgr; pgrep -x pickup; pgrep -x smtpd; pgrep -x exim4
      pgrep -x unbound; pgrep -f '^/usr/sbin/postgrey|^postgrey'; true; } 2>/dev/null | sort
}
daemons_before=$(daemons)

# ---- sendercheck, built outside the namespace (crates.io is not reachable inside)
BIN=
if [ -z "$oracle_only" ]; then
    if [ -n "${SENDERCHECK_BIN:-}" ]; then
        BIN=$SENDERCHECK_BIN
    else
        log "cargo build --release"
        cargo build --release --quiet </dev/null
        BIN=target/release/sendercheck
    fi
    [ -x "$BIN" ] || die "no sendercheck binary at $BIN"
    "$BIN" audit --help </dev/null 2>&1 | grep -q -- --allow-private-mx ||
        die "$BIN has no 'audit' command yet (run with --oracle-only to test the world alone)"
fi

# ---- the world; teardown always runs
SCRATCH=$(mktemp -d /tmp/scworld.XXXXXX)
OUT=${SC_OUT:-$SCRATCH/out}
rc=1
teardown() {
    trap - EXIT INT TERM
    if [ "$rc" != 0 ] && [ -d "$SCRATCH/run" ]; then
        log "failed: last lines of the world's logs"
        for f in "$SCRATCH"/run/postfix/maillog "$SCRATCH"/run/postfix-oracle/maillog \
                 "$SCRATCH"/run/exim-*/spool/log/mainlog "$SCRATCH"/run/unbound/unbound.log; do
            [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
        done >&2
    fi
    bash "$HERE/down.sh" || true
    rm -rf "$SCRATCH"
    if ip netns list | grep -qw "^$SC_NS"; then
        log "namespace $SC_NS still exists after teardown"; rc=1
    fi
    stray=$(comm -13 <(echo "$daemons_before") <(daemons) | tr '\n' ' ')
    if [ -n "${stray// /}" ]; then
        log "processes left after teardown: $stray"; ps -o pid,user,args -p "$(echo $stray | tr " " ,)" >&2 || true; rc=1
    fi
    log "exit $rc after $(( $(date +%s) - start ))s"
    exit "$rc"
}
trap teardown EXIT
# a signal ends the runner (by its PID) at once, then teardown runs
child=
trap 'rc=130; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null; exit 130' INT TERM

bash "$HERE/up.sh" "$SCRATCH"

# ---- the matrix
mkdir -p "$OUT"
# in the background, so that `wait` (unlike a foreground child) lets a signal in
set +e
timeout 270 python3 "$HERE/interop.py" run --out "$OUT" \
    ${BIN:+--bin "$BIN"} $oracle_only \
    --matrix tests/interop/matrix.csv </dev/null &
child=$!
wait "$child"
rc=$?
child=
set -e
[ -z "${SC_OUT:-}" ] || log "outputs kept in $OUT"
