#!/usr/bin/env bash
# Install everything Warren's tests need on a fresh Debian machine, then run them.
#   Debian packages: mosquitto-clients (mosquitto_pub/sub as real peers),
#                    mosquitto (a reference broker for the CLI tests and benchmarks) and
#                    chromium (headless, runs the conf42 example page in tests/examples)
#   Python packages: warren itself plus its [test] extra (pytest, hypothesis,
#                    paho-mqtt, aiomqtt, mypy, ruff)
#   npm packages:    MQTT.js (tests/js, from its lockfile)
# Arguments are passed to pytest, e.g.  scripts/test.sh -k retain -x
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
[ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
echo "== installing warren and its test dependencies"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== installing MQTT.js for the JavaScript peer tests"
(cd tests/js && npm ci --no-audit --no-fund --silent)

echo "== lint: ruff and mypy --strict"
"$PYTHON" -m ruff check src tests
"$PYTHON" -m mypy

echo "== tests"
exec "$PYTHON" -m pytest "$@"
