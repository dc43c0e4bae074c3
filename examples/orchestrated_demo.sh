#!/usr/bin/env bash
# The orchestrated half of `make demo`: a server, an agent and a flow run through the API,
# on a fresh HEADWATER_HOME (SQLite), all on 127.0.0.1. The server and agent are stopped at the
# end; the home is kept (DEMO_KEEP=0 removes it) so the finished run can be looked at in the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DEMO_KEEP=${DEMO_KEEP:-1}
export HEADWATER_HOME=$(mktemp -d -t headwater-demo-XXXXXX)
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HEADWATER__CLOUD__API="http://127.0.0.1:$PORT/graphql"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$DEMO_KEEP" = 1 ]; then
    step "The finished run is kept: look at it in the web UI"
    echo "HEADWATER_HOME=$HEADWATER_HOME $BIN/headwater server start --port $PORT"
    echo "then open http://127.0.0.1:$PORT/ui/  (rm -rf $HEADWATER_HOME when done)"
  else
    rm -rf "$HEADWATER_HOME"
  fi
}
trap cleanup EXIT

# Bold step titles only on a terminal: no raw escape codes in logs or files.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

step "headwater server start (SQLite in $HEADWATER_HOME, port $PORT): the UI is at http://127.0.0.1:$PORT/ui/"
"$BIN/headwater" server start --port "$PORT" >"$HEADWATER_HOME/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$BIN/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health')" 2>/dev/null && break
  sleep 0.1
done

step "headwater project create demo && headwater register --project demo --path examples/demo.py"
"$BIN/headwater" project create demo
"$BIN/headwater" register --project demo --path examples/demo.py

step "headwater agent start (in the background)"
"$BIN/headwater" agent start --poll-interval 0.5 >"$HEADWATER_HOME/agent.log" 2>&1 &
pids+=($!)

step "headwater run --name demo --project demo --param n=8 --watch"
"$BIN/headwater" run --name demo --project demo --param n=8 --watch

step "headwater get flow-runs"
"$BIN/headwater" get flow-runs
