#!/usr/bin/env bash
# Does edgeag work on a Raspberry Pi 4 and a Pi 5? Checked here, on x86_64, under user-mode emulation of their
# CPUs (Cortex-A72 and Cortex-A76) in a Debian bookworm arm64 root (what Raspberry Pi OS 64-bit is built on):
#
#   1. build the root once with ../shared/tools/arm64/emulated-root.sh (~11 min; reused afterwards);
#   2. clone this repository (its committed HEAD) into the root's ~/edgeag and install it as a Pi user
#      would: the commands of the install block in docs/RASPBERRY_PI.md, run as they are (~5 min);
#   3. per CPU model: `edgeag predict` on a few UTKFace test faces and a three-face frame, and
#      `edgeag run --video` on a short generated clip, compared with the same commands on this x86 machine
#      (benchmarks/pi/compare.py: same faces and genders, ages within 2 years).
#
# One line per check (PASS/FAIL), then a summary; exit 0 only if every check passed.
#
#   benchmarks/pi/verify.sh [pi4] [pi5]          (default: both)
#
# Environment: EDGEAG_PI_ROOT   the arm64 root (default ~/.cache/edgeag/pi-arm64-root)
#              EMULATED_ROOT    the recipe (default ../shared/tools/arm64/emulated-root.sh beside the checkout)
#              EDGEAG_X86       the x86 edgeag giving the reference (default: `edgeag` on PATH); its venv's python
#                               makes the inputs from ../shared/data (faces are never committed)
#              VERIFY_FRAMES    frames of the generated clip (default 48)
#              EDGEAG_PI_PIP_EXTRA  requirements pip-installed into the venv after section 1, to try other
#                               versions (e.g. 'mediapipe==0.10.18 numpy<2'); empty by default
# Timings under emulation say nothing about a real Pi; only exit codes and outputs count.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
R=$(realpath -m "${EDGEAG_PI_ROOT:-$HOME/.cache/edgeag/pi-arm64-root}")
TOOL=${EMULATED_ROOT:-$REPO/../shared/tools/arm64/emulated-root.sh}
X86=${EDGEAG_X86:-$(command -v edgeag || true)}
FRAMES=${VERIFY_FRAMES:-48}
CPUS=("$@")
[ ${#CPUS[@]} -gt 0 ] || CPUS=(pi4 pi5)
for c in "${CPUS[@]}"; do
  [ "$c" = pi4 ] || [ "$c" = pi5 ] || { echo "usage: verify.sh [pi4] [pi5]" >&2; exit 2; }
done
[ -f "$TOOL" ] || { echo "emulated-root recipe not found: $TOOL (set EMULATED_ROOT)" >&2; exit 2; }
[ -n "$X86" ] && [ -x "$X86" ] || { echo "no x86 edgeag for the reference (set EDGEAG_X86)" >&2; exit 2; }
PY=$(dirname "$X86")/python
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

report() {  # report PASS|FAIL TEXT
  echo "$1 $2"
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

in_root() {  # in_root pi4|pi5 'CMD': run CMD in the root as that CPU (the venv activated if it exists)
  timeout 3600 bash "$TOOL" run "$R" "$1" \
    "cd ~; [ -f ~/edgeag-env/bin/activate ] && source ~/edgeag-env/bin/activate; $2"
}

exit_reason() {  # exit_reason RC STDERR_FILE: why a command failed, in one line
  local why="exit code $1"
  [ "$1" -eq 132 ] && why="$why (SIGILL: an instruction this CPU lacks)"
  [ "$1" -eq 124 ] && why="$why (timed out)"
  local msg
  msg=$(grep -a -m1 -E 'FATAL|[Ee]rror' "$2" 2>/dev/null | cut -c1-160)
  echo "$why${msg:+: $msg}"
}

# -- 1. the arm64 root ------------------------------------------------------------------------------------
echo "verify.sh $(date -u '+%Y-%m-%d %H:%M UTC'), edgeag commit $(git -C "$REPO" rev-parse --short HEAD)" \
  "($(git -C "$REPO" log -1 --format=%cs)), root $R"
if [ -x "$R/usr/bin/python3" ]; then
  report PASS "root: reused $R"
else
  t0=$SECONDS
  if nice -n 10 bash "$TOOL" build "$R" >"$WORK/build.log" 2>&1; then
    report PASS "root: built in $((SECONDS - t0)) s"
  else
    report FAIL "root: build failed ($(tail -1 "$WORK/build.log"))"
    echo "0 of 1 checks passed"; exit 1
  fi
fi

# -- 2. the x86 reference ---------------------------------------------------------------------------------
IN=$WORK/inputs
if ! "$PY" "$REPO/benchmarks/pi/make_inputs.py" "$IN" --frames "$FRAMES" >"$WORK/inputs.log" 2>&1; then
  report FAIL "inputs: $(tail -1 "$WORK/inputs.log")"; echo "$passed of $((passed + failed)) checks passed"; exit 1
fi
STILLS=$(cd "$IN" && ls utk_*.png group3.png | tr '\n' ' ')
PREDICT="edgeag predict $STILLS --json -"
RUN="edgeag run --video faces3.mp4 --headless --json run.jsonl --quiet"
(cd "$IN" && "$X86" ${PREDICT#edgeag } >"$WORK/x86_predict.jsonl" 2>"$WORK/x86.err" && "$X86" ${RUN#edgeag } 2>>"$WORK/x86.err" \
  && mv run.jsonl "$WORK/x86_run.jsonl") || { report FAIL "x86 reference: $(tail -1 "$WORK/x86.err")"; }
echo "x86 reference: $X86 ($("$X86" --version)), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# -- 3. clone and install as a Pi user (docs/RASPBERRY_PI.md) ---------------------------------------------
rm -rf "$R/root/edgeag" "$R/root/edgeag-env" "$R/root/verify"
git clone -q "$REPO" "$R/root/edgeag"
awk '/<!-- verify.sh: install begin -->/{f=1; next} /<!-- verify.sh: install end -->/{f=0} f && !/^```/' \
  "$REPO/docs/RASPBERRY_PI.md" | sed 's/^sudo //' >"$R/root/install.sh"
cp -r "$IN" "$R/root/verify"
# pip under emulation reads slowly (TLS in emulated code) and PyPI's servers drop such slow downloads (seen here:
# "Connection reset by peer" on the 100 MB wheels): the host downloads the aarch64/CPython 3.11 wheels of the same
# requirements (check_wheels.py's resolution) and the root's pip installs from them alone.
rm -rf "$R/root/wheels"
EXTRA=${EDGEAG_PI_PIP_EXTRA:-}
if ! "$PY" "$REPO/benchmarks/pi/check_wheels.py" --download "$R/root/wheels" $EXTRA >"$WORK/wheels.log" 2>&1; then
  report FAIL "aarch64 wheels: $(tail -1 "$WORK/wheels.log")"
fi
t0=$SECONDS
[ -z "$EXTRA" ] || printf 'pip install %s\nedgeag --version\n' "$(printf "'%s' " $EXTRA)" >>"$R/root/install.sh"
if in_root "${CPUS[0]}" 'set -e; export DEBIAN_FRONTEND=noninteractive PIP_NO_INDEX=1 PIP_FIND_LINKS=~/wheels
                         source ~/install.sh' >"$WORK/install.log" 2>&1; then
  report PASS "install (${CPUS[0]}, docs/RASPBERRY_PI.md section 1${EXTRA:+, then pip install $EXTRA}):\
 $(tail -1 "$WORK/install.log") in $((SECONDS - t0)) s"
else
  report FAIL "install (${CPUS[0]}): $(grep -a -m1 -i error "$WORK/install.log" || tail -1 "$WORK/install.log")"
fi
echo "arm64 versions: $(in_root pi5 "python3 --version; pip list 2>/dev/null | grep -i -E '^(ai-edge-litert|mediapipe|numpy|opencv[a-z-]*) '" \
  2>/dev/null | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')"

# -- 4. predict and run --video per CPU model --------------------------------------------------------------
for cpu in "${CPUS[@]}"; do
  in_root "$cpu" "cd ~/verify; $PREDICT >predict_$cpu.jsonl 2>predict_$cpu.err; echo \$? >predict_$cpu.rc
                  $RUN 2>run_$cpu.err; echo \$? >run_$cpu.rc; mv run.jsonl run_$cpu.jsonl 2>/dev/null" \
    >"$WORK/$cpu.log" 2>&1
  for what in predict run; do
    rc=$(cat "$R/root/verify/${what}_$cpu.rc" 2>/dev/null || echo 255)
    label="$cpu $what$([ $what = run ] && echo ' --video')"
    if [ "$rc" -ne 0 ]; then
      report FAIL "$label: $(exit_reason "$rc" "$R/root/verify/${what}_$cpu.err")"
    else
      line=$("$PY" "$REPO/benchmarks/pi/compare.py" "$label" "$WORK/x86_$what.jsonl" "$R/root/verify/${what}_$cpu.jsonl")
      report "${line%% *}" "${line#* }"
    fi
  done
done

echo "$passed of $((passed + failed)) checks passed"
[ "$failed" -eq 0 ]
