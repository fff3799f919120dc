#!/usr/bin/env bash
# Runner overhead benchmark (issue 2): a 101-stage shell pipeline — one producer, N=100 consumers each
# reading its own param — timed with pdpipe (release build) and, when installed, DVC side by side.
#
#   bench/runner/overhead.sh            # uses .build/release/pdpipe (builds it if missing)
#   DVC=/path/to/dvc bench/runner/overhead.sh   # DVC binary (default: `dvc` on PATH, skipped if absent)
#   N=100 REPS=5 DVC_FIRST_REPS=3 ...   # sizes / repetitions
#
# Reported: median wall time of REPS repetitions for the first full run (fresh store each time, -j 1),
# no-op `status`, no-op `run`; per-stage overhead = (first run - the same 101 commands run by a plain
# shell loop) / 101.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${N:-100}
REPS=${REPS:-5}
DVC_FIRST_REPS=${DVC_FIRST_REPS:-3}
BIN=${PDPIPE:-$ROOT/.build/release/pdpipe}
DVC=${DVC:-$(command -v dvc || true)}
if [ ! -x "$BIN" ]; then (cd "$ROOT" && swift build -c release --product pdpipe >/dev/null); fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$CPU_LOG"' EXIT
STAGES=$((N + 1))

# Microseconds of wall time taken by a command (output discarded; failure aborts). The command's
# user+sys CPU seconds are appended to $CPU_LOG, so a loaded machine can be told apart from real cost.
CPU_LOG=$(mktemp)
usec() {
  local s e
  s=$(date +%s%N)
  /usr/bin/time -f "%U %S" -a -o "$CPU_LOG" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  e=$(date +%s%N)
  echo $(((e - s) / 1000))
}
# Median CPU seconds of the last $1 commands measured.
cpu_median() { tail -n "$1" "$CPU_LOG" | awk '{ print $1 + $2 }' | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
secs() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1e6 }'; }

# --- pdpipe project -------------------------------------------------------------------------
P="$WORK/pdpipe"; mkdir -p "$P/pipelines"
{
  echo "params:"; echo "  c:"
  for i in $(seq -w 0 $((N - 1))); do echo "    p$i: $((10#$i))"; done
  echo "stages:"
  echo "  producer:"; echo "    kind: shell"; echo "    cmd: seq 1 1000 > data.txt"; echo "    outs: [data.txt]"
  for i in $(seq -w 0 $((N - 1))); do
    echo "  consumer_$i:"; echo "    kind: shell"; echo "    needs: [producer]"
    echo "    cmd: cat \${inputs.producer}/data.txt > out.txt && echo \${c.p$i} >> out.txt"
    echo "    outs: [out.txt]"
  done
} > "$P/pipelines/bench.yaml"
cd "$P"

# Floor: the same commands run one after another by a plain shell (process start + work).
RAW=()
for r in $(seq "$REPS"); do
  rm -rf raw; mkdir -p raw
  RAW+=("$(usec sh -c "cd raw && seq 1 1000 > data.txt; for i in \$(seq 0 $((N - 1))); do sh -c 'cat data.txt > out_\$0.txt && echo \$0 >> out_\$0.txt' \$i; done")")
done
RAW_MED=$(printf '%s\n' "${RAW[@]}" | median)

FIRST=(); STATUS=(); NOOP=()
for r in $(seq "$REPS"); do rm -rf .pdpipe; FIRST+=("$(usec "$BIN" run pipelines/bench.yaml -j 1)"); done
CPU_FIRST=$(cpu_median "$REPS")
for r in $(seq "$REPS"); do STATUS+=("$(usec "$BIN" status pipelines/bench.yaml)"); done
CPU_STATUS=$(cpu_median "$REPS")
for r in $(seq "$REPS"); do NOOP+=("$(usec "$BIN" run pipelines/bench.yaml)"); done
CPU_NOOP=$(cpu_median "$REPS")
"$BIN" status pipelines/bench.yaml --exit-code >/dev/null || { echo "pipeline not up to date after run" >&2; exit 1; }
PD_FIRST=$(printf '%s\n' "${FIRST[@]}" | median)
PD_STATUS=$(printf '%s\n' "${STATUS[@]}" | median)
PD_NOOP=$(printf '%s\n' "${NOOP[@]}" | median)
PER_STAGE=$(awk -v f="$PD_FIRST" -v r="$RAW_MED" -v n="$STAGES" 'BEGIN { printf "%.2f", (f - r) / n / 1000 }')

echo "# pdpipe runner overhead, $STAGES shell stages ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg))"
echo
echo "| measurement | pdpipe wall (s) | pdpipe CPU user+sys (s) |"
echo "|---|---|---|"
echo "| first full run (-j 1), median of $REPS | $(secs "$PD_FIRST") | $CPU_FIRST |"
echo "| no-op status, median of $REPS | $(secs "$PD_STATUS") | $CPU_STATUS |"
echo "| no-op run, median of $REPS | $(secs "$PD_NOOP") | $CPU_NOOP |"
echo "| same commands in a plain shell loop | $(secs "$RAW_MED") | |"
echo "| per-stage overhead (first run - shell loop) / $STAGES | ${PER_STAGE} ms | |"

# --- DVC, same pipeline ---------------------------------------------------------------------
if [ -z "$DVC" ]; then echo; echo "DVC not installed: skipped (pip install dvc)"; exit 0; fi
D="$WORK/dvc"; mkdir -p "$D"; cd "$D"
export DVC_NO_ANALYTICS=1
"$DVC" init --no-scm -q
{
  echo "c:"; for i in $(seq -w 0 $((N - 1))); do echo "  p$i: $((10#$i))"; done
} > params.yaml
{
  echo "stages:"
  echo "  producer:"; echo "    cmd: seq 1 1000 > data.txt"; echo "    outs: [data.txt]"
  for i in $(seq -w 0 $((N - 1))); do
    echo "  consumer_$i:"
    echo "    cmd: cat data.txt > out_$i.txt && echo \${c.p$i} >> out_$i.txt"
    echo "    deps: [data.txt]"; echo "    params: [c.p$i]"; echo "    outs: [out_$i.txt]"
  done
} > dvc.yaml
DFIRST=(); DSTATUS=(); DNOOP=()
for r in $(seq "$DVC_FIRST_REPS"); do
  rm -rf .dvc/cache .dvc/tmp dvc.lock data.txt out_*.txt
  DFIRST+=("$(usec "$DVC" repro)")
done
for r in $(seq "$REPS"); do DSTATUS+=("$(usec "$DVC" status)"); done
for r in $(seq "$REPS"); do DNOOP+=("$(usec "$DVC" repro)"); done
DV_FIRST=$(printf '%s\n' "${DFIRST[@]}" | median)
DV_STATUS=$(printf '%s\n' "${DSTATUS[@]}" | median)
DV_NOOP=$(printf '%s\n' "${DNOOP[@]}" | median)
DV_PER_STAGE=$(awk -v f="$DV_FIRST" -v r="$RAW_MED" -v n="$STAGES" 'BEGIN { printf "%.2f", (f - r) / n / 1000 }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
echo
echo "## side by side with DVC $("$DVC" --version) (same machine, same run)"
echo
echo "| measurement | DVC (s) | pdpipe (s) | DVC / pdpipe |"
echo "|---|---|---|---|"
echo "| first full run, median of $DVC_FIRST_REPS (DVC) / $REPS (pdpipe) | $(secs "$DV_FIRST") | $(secs "$PD_FIRST") | $(ratio "$DV_FIRST" "$PD_FIRST") |"
echo "| no-op status, median of $REPS | $(secs "$DV_STATUS") | $(secs "$PD_STATUS") | $(ratio "$DV_STATUS" "$PD_STATUS") |"
echo "| no-op run (dvc repro / pdpipe run), median of $REPS | $(secs "$DV_NOOP") | $(secs "$PD_NOOP") | $(ratio "$DV_NOOP" "$PD_NOOP") |"
echo "| per-stage overhead | ${DV_PER_STAGE} ms | ${PER_STAGE} ms | $(awk -v a="$DV_PER_STAGE" -v b="$PER_STAGE" 'BEGIN { printf "%.1fx", a / b }') |"
