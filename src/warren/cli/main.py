"""The ``warren`` command."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

from warren import __version__
from warren.errors import ConfigError

__all__ = ["cli", "main"]

_SERVE_EPILOG = """\
\b
Examples:
  warren serve                          MQTT on :1883, MQTT/WebSocket on :8000/mqtt,
                                        the native protocol on :55555
  warren serve --host 0.0.0.0           accept clients from the network too
  warren serve --config warren.toml     everything from a file
  WARREN_MQTT_PORT=1884 warren serve    environment overrides the file

\b
Configuration file (TOML); every key is optional:
  [server]
  data_dir = "./warren-data"
  log_level = "info"            # debug | info | warning | error
  sys_interval = 10             # seconds between $SYS/broker/... updates; 0 = off
  storage = "sqlite"            # durable state in data_dir/warren.db; "memory": none
  synchronous = "full"          # "normal": no fsync per commit (survives kill -9,
                                # not a power cut)
  # storage_max_bytes = 1073741824  # cap the data file; beyond it persistent
                                # messages are refused (PUBACK 0x80, basic.nack)

  [[listener]]
  protocol = "mqtt"             # "mqtt" (TCP), "mqtt-ws" (WebSocket), "native" (TCP)
                                # or "native-ws" (native protocol over WebSocket)
                                # or "admin" (management API, 127.0.0.1:8080 by default)
  host = "127.0.0.1"            # the default; "0.0.0.0" exposes it
  port = 1883
  # path = "/mqtt"              # mqtt-ws (and native-ws: any path unless set)

  [mqtt]
  max_packet_size = 1048576     # larger packets: DISCONNECT 0x95
  server_keep_alive = 0         # 0 = honour the client's keep alive
  receive_maximum = 1024
  topic_alias_maximum = 16
  max_queued_messages = 1000    # per session, while offline or slow
  slow_consumer = "queue"       # or "disconnect" when the queue is full

  [vpn.default]
  acl_default = "allow"         # when no rule matches
  acl_file = "acl.toml"         # [[acl]] rules, relative to this file
  [[vpn.default.acl]]
  action = "deny"               # allow | deny; first matching rule wins
  operation = "subscribe"       # publish | subscribe | all
  topic = "secret/#"            # MQTT filter syntax
  user = "*"                    # a username, "*" or "$anonymous"

Precedence: flags > WARREN_* environment > file > defaults.
"""


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    # The websockets library logs every listener and handshake at INFO; Warren
    # already says what is listening. Its warnings and errors still show.
    if level != "debug":
        logging.getLogger("websockets").setLevel(logging.WARNING)


class _Commands(click.Group):
    """The subcommands, each imported when it is used: ``warren serve`` does not
    pay for the client and benchmark modules (about 0.1 s of CPU at start-up)."""

    _modules = {  # command name -> (module, attribute)
        "bench": ("warren.cli.bench", "bench"),
        "pub": ("warren.cli.pubsub", "pub"),
        "queue": ("warren.cli.queue", "queue"),
        "sub": ("warren.cli.pubsub", "sub"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self._modules.get(cmd_name)
        if where is not None and cmd_name not in self.commands:
            module, attribute = where
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["--help"], "auto_envvar_prefix": "WARREN"},
)
@click.version_option(__version__, prog_name="warren")
def cli() -> None:
    """Warren: an event broker for MQTT 3.1.1/5.0 over TCP and WebSocket.

    Start a broker with `warren serve`; talk to it with `warren pub` and
    `warren sub` (or any MQTT client). Each command has --help.
    """


@cli.command(epilog=_SERVE_EPILOG)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="WARREN_CONFIG",
    help="TOML configuration file (format below).",
)
@click.option("--host", envvar="WARREN_HOST",
              help="Address every listener binds to (default 127.0.0.1; 0.0.0.0 = all).")
@click.option(
    "--mqtt-port",
    type=click.IntRange(0, 65535),
    envvar="WARREN_MQTT_PORT",
    help="MQTT over TCP port (default 1883; 0 = any free port).",
)
@click.option(
    "--ws-port",
    type=click.IntRange(0, 65535),
    envvar="WARREN_WS_PORT",
    help="MQTT over WebSocket port (default 8000; 0 = any free port).",
)
@click.option(
    "--native-port",
    type=click.IntRange(0, 65535),
    envvar="WARREN_NATIVE_PORT",
    help="Native protocol (TCP) port (default 55555; 0 = any free port).",
)
@click.option(
    "--amqp-port",
    type=click.IntRange(0, 65535),
    envvar="WARREN_AMQP_PORT",
    help="AMQP 0-9-1 port (default 5672; 0 = any free port).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="WARREN_DATA_DIR",
    help="Where state is kept (default ./warren-data).",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the pid and bound ports as JSON here once listening.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def serve(
    config_path: Path | None,
    host: str | None,
    mqtt_port: int | None,
    ws_port: int | None,
    native_port: int | None,
    amqp_port: int | None,
    data_dir: Path | None,
    ready_file: Path | None,
    verbose: bool,
) -> None:
    """Run the broker until Ctrl-C or SIGTERM."""
    from warren.config import load_config
    from warren.server import run

    try:
        config = load_config(
            config_path,
            {
                "host": host,
                "mqtt_port": mqtt_port,
                "ws_port": ws_port,
                "native_port": native_port,
                "amqp_port": amqp_port,
                "data_dir": data_dir,
                "log_level": "debug" if verbose else None,
            },
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _setup_logging(config.server.log_level)
    try:
        run(config, ready_file)
    except OSError as exc:
        raise click.ClickException(str(exc.strerror or exc)) from exc


def main() -> None:
    cli(prog_name="warren")


if __name__ == "__main__":
    main()
