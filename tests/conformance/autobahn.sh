#!/usr/bin/env bash
# Autobahn|Testsuite fuzzing client against monoceros serving examples/app.py (every WebSocket
# session there echoes its messages).
#
#   tests/conformance/autobahn.sh [extra monoceros options...]
#   make autobahn [AUTOBAHN_ARGS="--ws-per-message-deflate false"]
#
# autobahntestsuite is Python 2.7 only: it gets its own virtualenv (pins in
# autobahn-requirements.txt), made once with pyenv's (or PATH's) python2.7 and reused.
# The report (HTML + index.json) goes to build/autobahn/ (gitignored). Prints a summary by
# behavior and exits non-zero when any case is FAILED (or the run itself broke).
#
# Environment:
#   AUTOBAHN_VENV     the py2.7 virtualenv           [${TMPDIR:-/tmp}/monoceros-autobahn-venv]
#   AUTOBAHN_OUT      report directory               [build/autobahn]
#   AUTOBAHN_CASES    JSON list of case patterns     ["*"]
#   AUTOBAHN_EXCLUDE  JSON list of excluded patterns []
#   AUTOBAHN_TIMEOUT  seconds for the whole wstest run [1200]
#   PYTHON2           a python2.7 interpreter        [found with pyenv or on PATH]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

VENV="${AUTOBAHN_VENV:-${TMPDIR:-/tmp}/monoceros-autobahn-venv}"
OUT="${AUTOBAHN_OUT:-$ROOT/build/autobahn}"
CASES="${AUTOBAHN_CASES:-[\"*\"]}"
EXCLUDE="${AUTOBAHN_EXCLUDE:-[]}"
WSTEST_TIMEOUT="${AUTOBAHN_TIMEOUT:-1200}"
REQUIREMENTS="$HERE/autobahn-requirements.txt"
MONOCEROS="$ROOT/.venv/bin/monoceros"
PY3="$ROOT/.venv/bin/python"
HOST=127.0.0.1

log() { printf 'autobahn: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[[ -x "$MONOCEROS" ]] || die "$MONOCEROS not found: run 'make test' (or pip install -e .) first"
command -v curl >/dev/null || die "curl is needed (apt-get install -y curl)"

# Old pip on 2.7 does not read the host trust store by itself (TLS-inspecting proxies).
if [[ -z "${PIP_CERT:-}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
    export PIP_CERT=/etc/ssl/certs/ca-certificates.crt
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1

find_python2() {
    local candidate
    for candidate in "${PYTHON2:-}" python2.7 python2 \
        "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/2.7*/bin/python; do
        [[ -n "$candidate" ]] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# -- the py2.7 virtualenv with wstest -----------------------------------------------------------
STAMP="$VENV/.installed-$(cksum <"$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" ]]; then
    PY2="$(find_python2)" || die "no Python 2.7 found (set PYTHON2=...; e.g. 'pyenv install 2.7.18')"
    log "creating $VENV with $PY2"
    rm -rf "$VENV"
    BOOTSTRAP="$VENV.bootstrap"
    if ! "$PY2" -c 'import virtualenv' 2>/dev/null; then
        # virtualenv 20.22 dropped Python 2; install an older one beside, not into, python2.7.
        rm -rf "$BOOTSTRAP"
        if ! "$PY2" -m pip install --target "$BOOTSTRAP" 'virtualenv<20.22' \
            >"$BOOTSTRAP.log" 2>&1; then
            tail -n 30 "$BOOTSTRAP.log" >&2
            die "could not install virtualenv<20.22 for $PY2"
        fi
    fi
    PYTHONPATH="$BOOTSTRAP" "$PY2" -m virtualenv --quiet "$VENV"
    if ! "$VENV/bin/pip" install -r "$REQUIREMENTS" >"$VENV/pip-install.log" 2>&1; then
        tail -n 30 "$VENV/pip-install.log" >&2
        die "pip install -r $REQUIREMENTS failed (log: $VENV/pip-install.log)"
    fi
    "$VENV/bin/python" -c 'import autobahntestsuite, autobahn, twisted' \
        || die "autobahntestsuite installed but does not import"
    rm -f "$VENV"/.installed-* && touch "$STAMP"
fi
WSTEST="$VENV/bin/wstest"

# -- monoceros with the example app ----------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
PORT="$("$PY3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]]; then
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

log "starting monoceros on $HOST:$PORT ($*)"
"$MONOCEROS" examples.app:app --host "$HOST" --port "$PORT" \
    --no-metrics --no-access-log --log-level warning --log-format console \
    --ws-max-size 16777216 "$@" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
log "monoceros pid $SERVER_PID; its log: $OUT/server.log"

ready=""
for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$OUT/server.log" >&2
        die "monoceros exited during startup"
    fi
    if curl -fsS --max-time 1 "http://$HOST:$PORT/" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ -n "$ready" ]] || die "monoceros did not answer on $HOST:$PORT within 10 s"

# -- the fuzzing client -------------------------------------------------------------------------
cat >"$OUT/spec.json" <<EOF
{
  "outdir": "$OUT/reports",
  "servers": [{"agent": "monoceros", "url": "ws://$HOST:$PORT"}],
  "cases": $CASES,
  "exclude-cases": $EXCLUDE,
  "exclude-agent-cases": {}
}
EOF

log "running wstest -m fuzzingclient (timeout ${WSTEST_TIMEOUT}s); log in $OUT/wstest.log"
started=$(date +%s)
status=0
(cd "$OUT" && timeout --kill-after=10 "$WSTEST_TIMEOUT" \
    "$WSTEST" -m fuzzingclient -s "$OUT/spec.json") >"$OUT/wstest.log" 2>&1 || status=$?
elapsed=$(($(date +%s) - started))
if [[ $status -ne 0 ]]; then
    tail -n 30 "$OUT/wstest.log" >&2
    [[ $status -eq 124 ]] && die "wstest timed out after ${WSTEST_TIMEOUT}s"
    die "wstest exited with status $status"
fi
kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; die "monoceros died during the run"; }

# -- summary ------------------------------------------------------------------------------------
INDEX="$OUT/reports/index.json"
[[ -f "$INDEX" ]] || die "no $INDEX: wstest wrote no report"
log "wstest took ${elapsed}s; report: $OUT/reports/index.html"
"$PY3" - "$INDEX" <<'EOF'
import json
import sys
from collections import Counter

ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def key(case_id):
    return [int(part) for part in case_id.split(".")]


with open(sys.argv[1]) as f:
    index = json.load(f)
failed = False
for agent, cases in sorted(index.items()):
    behaviors = Counter(result["behavior"] for result in cases.values())
    closes = Counter(result["behaviorClose"] for result in cases.values())
    print(f"{agent}: {len(cases)} cases")
    for behavior in ORDER + sorted(set(behaviors) - set(ORDER)):
        print(f"  {behavior:<14} {behaviors.get(behavior, 0)}")
    print("  close behavior: " + ", ".join(f"{b} {n}" for b, n in sorted(closes.items())))
    bad = sorted(
        (c for c, r in cases.items() if "FAILED" in (r["behavior"], r["behaviorClose"])), key=key
    )
    if bad:
        failed = True
        print(f"  FAILED cases ({len(bad)}):")
        for case_id in bad:
            r = cases[case_id]
            print(
                f"    {case_id:<10} behavior={r['behavior']} close={r['behaviorClose']}"
                f" remoteCloseCode={r.get('remoteCloseCode')} ({r['reportfile']})"
            )
    for behavior in ("NON-STRICT", "UNIMPLEMENTED"):
        ids = sorted((c for c, r in cases.items() if r["behavior"] == behavior), key=key)
        if ids:
            print(f"  {behavior}: {' '.join(ids)}")
sys.exit(1 if failed else 0)
EOF
