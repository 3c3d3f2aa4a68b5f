#!/usr/bin/env bash
# Benchmarks of the issue's acceptance criteria A, B and C (see RESULTS.md).
# Builds --release, then prints figures. Loopback only; each step is bounded.
#   benches/run.sh            all three
#   benches/run.sh A|B|C      one of them
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-ABC}
cargo build --release --bin sendercheck --example gen_senders --example io_floor --example bench_dns --example bench_callout
BIN=target/release/sendercheck
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sendercheck-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ $which == *A* ]]; then
  ROWS=${ROWS:-1000000} DOMAINS=${DOMAINS:-50000}
  target/release/examples/gen_senders "$ROWS" "$DOMAINS" "$WORK/big.csv"
  echo "== A: input stage, $ROWS rows over $DOMAINS domains ($(du -h "$WORK/big.csv" | cut -f1))"
  PY='import csv,sys
d=set()
with open(sys.argv[1],newline="") as f:
    r=csv.reader(f); i=next(r).index("email")
    for row in r:
        if len(row)>i:
            a=row[i]; k=a.rfind("@")
            if k>=0: d.add(a[k+1:].lower())
print(len(d), "distinct domains")'
  for run in 1 2 3; do
    rm -rf "$WORK/outA"
    /usr/bin/time -v "$BIN" audit "$WORK/big.csv" --stop-after syntax --format json -o "$WORK/outA" -q \
      >/dev/null 2>"$WORK/timeA" || true
    printf 'sendercheck run %s: wall %s  user %ss  sys %ss  peak RSS %s KB  report.json %s\n' "$run" \
      "$(grep 'Elapsed (wall' "$WORK/timeA" | awk '{print $NF}')" \
      "$(grep 'User time' "$WORK/timeA" | awk '{print $NF}')" \
      "$(grep 'System time' "$WORK/timeA" | awk '{print $NF}')" \
      "$(grep 'Maximum resident' "$WORK/timeA" | awk '{print $NF}')" \
      "$(du -h "$WORK/outA/report.json" | cut -f1)"
    /usr/bin/time -f "python3 csv run $run: wall %es  user %Us  sys %Ss  peak RSS %M KB" \
      python3 -c "$PY" "$WORK/big.csv"
    # The floor: the same two passes and same-size rows, with no validation.
    /usr/bin/time -f "io_floor run $run: wall %es  user %Us  sys %Ss  peak RSS %M KB" \
      target/release/examples/io_floor "$WORK/big.csv" "$WORK/floor.json" >/dev/null
  done
fi

if [[ $which == *B* ]]; then
  echo "== B: DNS"
  timeout 600 target/release/examples/bench_dns 50000 500
fi

if [[ $which == *C* ]]; then
  echo "== C: callouts"
  timeout 900 target/release/examples/bench_callout 20000 2000 50 100
fi
