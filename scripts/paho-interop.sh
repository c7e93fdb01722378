#!/usr/bin/env bash
# Run the Eclipse Paho MQTT interoperability suites against a broker.
#
#   scripts/paho-interop.sh PAHO_CHECKOUT [warren|mosquitto]
#
# PAHO_CHECKOUT is a work tree of eclipse/paho.mqtt.testing (kept outside this
# repository, e.g. `git clone <mirror> /tmp/paho.mqtt.testing`). The broker is
# warren (default: `warren serve --config tests/interop/warren-paho.toml`) or,
# to calibrate, Debian's mosquitto with an equivalent configuration.
#
# Runs interoperability/client_test.py (MQTT 3.1.1, 10 tests) and
# client_test5.py (MQTT 5.0, 27 tests), each against a freshly started broker,
# and prints one line per suite:  "paho <suite>: N passed, M failed".
# Exit status: 0 when every test of both suites passed, 1 otherwise, 2 on a
# usage or start-up error.
#
# The suites' own __main__ blocks cannot be used as they are: client_test.py
# hands "-h HOST -p PORT" on to unittest.main(), which then prints its help and
# exits. A small runner imports each module, sets the globals its __main__ would
# set (host, port, topics, ...) and runs its Test case with unittest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
paho="${1:-}"
broker="${2:-${PAHO_BROKER:-warren}}"
if [[ -z "$paho" || ! -f "$paho/interoperability/client_test5.py" ]]; then
    echo "usage: $0 PAHO_CHECKOUT [warren|mosquitto]" >&2
    echo "  PAHO_CHECKOUT must contain interoperability/client_test5.py" >&2
    exit 2
fi
paho="$(cd "$paho" && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d -t warren-paho.XXXXXX)"
chmod 755 "$work" # mosquitto started as root drops to its own user, which must read its files
broker_pid=""

stop_broker() {
    # Graceful stop; warren must exit 0 on SIGTERM (contract).
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid"
        local rc=0
        wait "$broker_pid" || rc=$?
        if [[ $rc -ne 0 ]]; then
            echo "paho-interop: broker exited with status $rc on SIGTERM; its log:" >&2
            cat "$work/broker.log" >&2
        fi
    fi
    broker_pid=""
}
cleanup() {
    stop_broker
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() {
    # wait_for DESCRIPTION SECONDS COMMAND...: bounded poll, fails loudly.
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" 2>/dev/null; do
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "paho-interop: broker died before $what; its log:" >&2
            cat "$work/broker.log" >&2
            exit 2
        fi
        if ((SECONDS >= deadline)); then
            echo "paho-interop: no $what within ${seconds}s; broker log:" >&2
            cat "$work/broker.log" >&2
            exit 2
        fi
        sleep 0.05
    done
}

port_open() {
    "$python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"
}

start_broker() {
    # Sets $port.
    rm -rf "$work/data" "$work/ready.json"
    mkdir -p "$work/data"
    case "$broker" in
    warren)
        warren serve --config "$here/tests/interop/warren-paho.toml" \
            --data-dir "$work/data" --ready-file "$work/ready.json" \
            >"$work/broker.log" 2>&1 &
        broker_pid=$!
        wait_for "ready file" 20 test -s "$work/ready.json"
        port="$("$python" -c '
import json, sys
ready = json.load(open(sys.argv[1]))
print(next(l["port"] for l in ready["listeners"] if l["protocol"] == "mqtt"))
' "$work/ready.json")"
        ;;
    mosquitto)
        port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        # Same intent as tests/interop/warren-paho.toml.
        cat >"$work/acl" <<'EOF'
topic readwrite #
topic deny test/nosubscribe
EOF
        cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
acl_file $work/acl
max_keepalive 60
persistence false
log_dest stderr
EOF
        /usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$work/broker.log" 2>&1 &
        broker_pid=$!
        wait_for "listening port $port" 20 port_open "$port"
        ;;
    *)
        echo "paho-interop: unknown broker '$broker' (warren|mosquitto)" >&2
        exit 2
        ;;
    esac
}

cat >"$work/run_suite.py" <<'EOF'
"""Import a Paho interoperability module, set its globals, run its Test case."""
import importlib
import os
import signal
import sys
import unittest

interop, module_name, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.chdir(interop)
sys.path.insert(0, interop)
module = importlib.import_module(module_name)
# What each module's __main__ block sets before unittest.main().
module.host, module.port = host, port
module.topics = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
module.wildtopics = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
module.nosubscribe_topics = ("test/nosubscribe",)
module.topic_prefix = "client_test5/"


# Some tests loop until the broker acts (test_flow_control2 waits forever for a
# DISCONNECT): bound each test so that one hang costs one failure, not the run.
per_test = int(os.environ.get("PAHO_TEST_TIMEOUT", "60"))


class TestHung(BaseException):
    """Not an OSError: the suites swallow socket.timeout (= TimeoutError) in loops."""


def on_alarm(signum, frame):
    raise TestHung(f"test still running after {per_test}s (PAHO_TEST_TIMEOUT)")


signal.signal(signal.SIGALRM, on_alarm)
unbounded_run = unittest.TestCase.run


def bounded_run(self, result=None):
    signal.alarm(per_test)
    try:
        return unbounded_run(self, result)
    finally:
        signal.alarm(0)


unittest.TestCase.run = bounded_run
suite = unittest.defaultTestLoader.loadTestsFromTestCase(module.Test)
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
bad = {id(t) for t, _ in result.failures + result.errors}
failed = sorted(t.id().rsplit(".", 1)[-1] for t, _ in result.failures + result.errors)
passed = result.testsRun - len(bad)
with open(os.environ["PAHO_RESULT"], "w") as out:
    out.write(f"paho {module_name}: {passed} passed, {len(bad)} failed\n")
    if failed:
        out.write(f"  failed: {' '.join(failed)}\n")
EOF

status=0
summary=""
for suite in client_test client_test5; do
    start_broker
    echo "=== $suite against $broker on 127.0.0.1:$port ==="
    PAHO_RESULT="$work/$suite.result" "$python" "$work/run_suite.py" \
        "$paho/interoperability" "$suite" 127.0.0.1 "$port" || status=1
    stop_broker
    if [[ -s "$work/$suite.result" ]]; then
        summary+="$(cat "$work/$suite.result")"$'\n'
    else
        summary+="paho $suite: runner crashed"$'\n'
        status=1
    fi
done
echo "=== summary ($broker) ==="
printf '%s' "$summary"
exit "$status"
