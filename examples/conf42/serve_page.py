"""Serve the conf42 browser page and MQTT.js's browser bundle.

A CDN is not needed: the bundle comes from the MQTT.js installed for the tests
(``npm ci`` in tests/js puts it in tests/js/node_modules/mqtt/dist/mqtt.min.js), or
from the file given with --mqtt-js.

    python examples/conf42/serve_page.py [--port 8080]
    then open http://localhost:8080/?broker=ws://localhost:8000/mqtt
"""

from __future__ import annotations

import argparse
import http.server
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_BUNDLE = HERE.parents[1] / "tests" / "js" / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"


class PageHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *args, bundle: Path, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.bundle = bundle
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HERE / "index.html", "text/html; charset=utf-8")
        elif path == "/mqtt.min.js":
            self._send(self.bundle, "text/javascript; charset=utf-8")
        else:
            self.send_error(404)

    def _send(self, file: Path, content_type: str) -> None:
        try:
            body = file.read_bytes()
        except OSError:
            self.send_error(404, f"{file} not found (run `npm ci` in tests/js for MQTT.js)")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--mqtt-js", type=Path, default=DEFAULT_BUNDLE,
                        help="MQTT.js browser bundle (default: tests/js/node_modules/...)")
    parser.add_argument("--broker", default="ws://localhost:8000/mqtt",
                        help="the MQTT over WebSocket URL the page connects to")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(
        (args.host, args.port), partial(PageHandler, bundle=args.mqtt_js)
    )
    host, port = server.server_address[:2]
    print(f"open http://{host}:{port}/?broker={args.broker}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
