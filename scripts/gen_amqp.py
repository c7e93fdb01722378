#!/usr/bin/env python3
"""Generate src/warren/codecs/amqp/_methods.py from the AMQP 0-9-1 method table.

Usage::

    python scripts/gen_amqp.py PATH/TO/amqp-rabbitmq-0.9.1.json [-o OUTPUT]

The input is the machine-readable AMQP 0-9-1 definition RabbitMQ publishes
(``amqp-rabbitmq-0.9.1.json`` in the rabbitmq/rabbitmq-codegen repository): the
spec's classes and methods plus RabbitMQ's extensions (basic.nack, confirm,
exchange.bind/unbind, connection.blocked/unblocked/update-secret). It is not
kept in this repository; only the protocol facts it holds (class and method ids,
argument names, types and defaults) end up in the generated file.

What the JSON does not say — which peer sends each method — is written below,
from the ``chassis`` elements of the spec's XML (a method a client MUST/MAY
implement is sent by the server, and the other way round) and RabbitMQ's
documentation of its extensions.

The output is then formatted with ``ruff format`` (a test dependency), so that
running the generator again leaves a clean tree.
"""

from __future__ import annotations

import argparse
import json
import keyword
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from struct import calcsize

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "src/warren/codecs/amqp/_methods.py"

# The classes Warren serves. "access" (30) is in RabbitMQ's JSON for 0-8 clients;
# 0-9-1 removed it, but RabbitMQ still answers access.request, so it is kept.
CLASSES = ("connection", "channel", "access", "exchange", "queue", "basic", "confirm", "tx")

# Who sends what (spec XML chassis; RabbitMQ extensions documentation).
_SERVER_SENDS = """
    connection.start connection.secure connection.tune connection.open-ok
    connection.close connection.close-ok connection.blocked connection.unblocked
    connection.update-secret-ok
    channel.open-ok channel.flow channel.flow-ok channel.close channel.close-ok
    access.request-ok
    exchange.declare-ok exchange.delete-ok exchange.bind-ok exchange.unbind-ok
    queue.declare-ok queue.bind-ok queue.purge-ok queue.delete-ok queue.unbind-ok
    basic.qos-ok basic.consume-ok basic.cancel basic.cancel-ok basic.return
    basic.deliver basic.get-ok basic.get-empty basic.ack basic.nack basic.recover-ok
    tx.select-ok tx.commit-ok tx.rollback-ok confirm.select-ok
"""
SERVER_SENDS = frozenset(_SERVER_SENDS.split())
# basic.cancel from the server: RabbitMQ's consumer cancel notification
# basic.ack/nack from the server: publisher confirms (RabbitMQ extension).
_CLIENT_SENDS = """
    connection.start-ok connection.secure-ok connection.tune-ok connection.open
    connection.close connection.close-ok connection.update-secret
    channel.open channel.flow channel.flow-ok channel.close channel.close-ok
    access.request
    exchange.declare exchange.delete exchange.bind exchange.unbind
    queue.declare queue.bind queue.purge queue.delete queue.unbind
    basic.qos basic.consume basic.cancel basic.publish basic.get basic.ack
    basic.reject basic.recover-async basic.recover basic.nack
    tx.select tx.commit tx.rollback confirm.select
"""
CLIENT_SENDS = frozenset(_CLIENT_SENDS.split())

# AMQP type -> (Python annotation, struct code or None, zero value).
TYPES = {
    "octet": ("int", "B", "0"),
    "short": ("int", "H", "0"),
    "long": ("int", "I", "0"),
    "longlong": ("int", "Q", "0"),
    "timestamp": ("int", "Q", "0"),
    "bit": ("bool", None, "False"),
    "shortstr": ("str", None, '""'),
    "longstr": ("bytes", None, 'b""'),
    "table": ("FieldTable", None, None),
}


@dataclass
class Argument:
    name: str  # Python field name
    amqp_type: str
    default: str | None  # Python source of the default, None if required


@dataclass
class MethodDef:
    class_name: str  # e.g. "basic"
    class_id: int
    name: str  # e.g. "get-ok"
    method_id: int
    synchronous: bool
    content: bool
    arguments: list[Argument]

    @property
    def full_name(self) -> str:
        return f"{self.class_name}.{self.name}"

    @property
    def py_name(self) -> str:
        words = f"{self.class_name}-{self.name}".split("-")
        return "".join(word.capitalize() for word in words)

    @property
    def snake(self) -> str:
        return f"{self.class_name}_{self.name}".replace("-", "_")


def field_name(name: str) -> str:
    name = name.replace("-", "_")
    return name + "_" if keyword.iskeyword(name) else name


def py_literal(value: object, amqp_type: str) -> str:
    if amqp_type == "longstr" and isinstance(value, str):
        return "b" + json.dumps(value)
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise ValueError(f"unsupported default {value!r}")


def load(path: Path) -> list[MethodDef]:
    spec = json.loads(path.read_text())
    if (spec["major-version"], spec["minor-version"], spec.get("revision")) != (0, 9, 1):
        raise SystemExit(f"{path} is not the AMQP 0-9-1 definition")
    domains = {name: amqp_type for name, amqp_type in spec["domains"]}
    methods: list[MethodDef] = []
    for cls in spec["classes"]:
        if cls["name"] not in CLASSES:
            continue
        for method in cls["methods"]:
            arguments: list[Argument] = []
            defaulted = False
            for arg in method["arguments"]:
                amqp_type = arg.get("type") or domains[arg["domain"]]
                amqp_type = domains.get(amqp_type, amqp_type)
                if amqp_type not in TYPES:
                    raise SystemExit(f"unknown type {amqp_type} in {method['name']}")
                if "default-value" in arg and amqp_type != "table":
                    default: str | None = py_literal(arg["default-value"], amqp_type)
                    defaulted = True
                elif "default-value" in arg or (defaulted and amqp_type == "table"):
                    default = "TABLE"
                    defaulted = True
                elif defaulted:
                    # A dataclass field after a defaulted one needs a default too.
                    default = TYPES[amqp_type][2]
                else:
                    default = None
                arguments.append(Argument(field_name(arg["name"]), amqp_type, default))
            methods.append(
                MethodDef(
                    cls["name"],
                    cls["id"],
                    method["name"],
                    method["id"],
                    bool(method.get("synchronous")),
                    bool(method.get("content")),
                    arguments,
                )
            )
    missing = {m.full_name for m in methods} - SERVER_SENDS - CLIENT_SENDS
    if missing:
        raise SystemExit(f"no direction known for {sorted(missing)}")
    return methods


# -- code generation ------------------------------------------------------------------


class Structs:
    """The precompiled struct.Struct objects the generated code shares, by layout."""

    def __init__(self) -> None:
        self.layouts: set[str] = set()

    def name(self, layout: str) -> str:
        self.layouts.add(layout)
        return f"_S_{layout}"

    def source(self) -> list[str]:
        return [f'_S_{layout}: Final = Struct(">{layout}")' for layout in sorted(self.layouts)]


def runs(arguments: list[Argument]) -> list[tuple[str, list[Argument]]]:
    """Group arguments: ("fixed", run of integers and bit octets) or a single other one.

    Consecutive bits share octets, low bit first, eight to an octet (4.2.5.2); a
    fixed run packs into one struct, with one "B" per bit octet.
    """
    out: list[tuple[str, list[Argument]]] = []
    for arg in arguments:
        if TYPES[arg.amqp_type][1] is not None or arg.amqp_type == "bit":
            if out and out[-1][0] == "fixed":
                out[-1][1].append(arg)
            else:
                out.append(("fixed", [arg]))
        else:
            out.append((arg.amqp_type, [arg]))
    return out


def fixed_layout(run: list[Argument]) -> tuple[str, list[list[Argument]]]:
    """The struct layout of a fixed run and its items: one argument, or a bit octet."""
    layout = ""
    items: list[list[Argument]] = []
    for arg in run:
        if arg.amqp_type == "bit":
            if items and items[-1][0].amqp_type == "bit" and len(items[-1]) < 8:
                items[-1].append(arg)
                continue
            items.append([arg])
            layout += "B"
        else:
            items.append([arg])
            layout += TYPES[arg.amqp_type][1] or ""
    return layout, items


def gen_class(m: MethodDef) -> list[str]:
    if m.full_name in SERVER_SENDS and m.full_name in CLIENT_SENDS:
        direction = "sent by either peer"
    elif m.full_name in SERVER_SENDS:
        direction = "server to client"
    else:
        direction = "client to server"
    traits = [direction]
    if m.synchronous:
        traits.append("synchronous")
    if m.content:
        traits.append("carries content")
    arguments = ", ".join(f'("{a.name}", "{a.amqp_type}")' for a in m.arguments)
    if len(m.arguments) == 1:
        arguments += ","
    lines = [
        "@dataclass(frozen=True, slots=True)",
        f"class {m.py_name}({'ContentMethod' if m.content else 'Method'}):",
        f'    """``{m.full_name}`` ({m.class_id}, {m.method_id}): {"; ".join(traits)}."""',
        "",
        f"    CLASS_ID: ClassVar[int] = {m.class_id}",
        f"    METHOD_ID: ClassVar[int] = {m.method_id}",
        f'    NAME: ClassVar[str] = "{m.full_name}"',
        f"    SYNCHRONOUS: ClassVar[bool] = {m.synchronous}",
        f"    CONTENT: ClassVar[bool] = {m.content}",
        f"    FROM_CLIENT: ClassVar[bool] = {m.full_name in CLIENT_SENDS}",
        f"    FROM_SERVER: ClassVar[bool] = {m.full_name in SERVER_SENDS}",
    ]
    declaration = f"    ARGUMENTS: ClassVar[tuple[tuple[str, str], ...]] = ({arguments})"
    if len(declaration) <= 100:
        lines.append(declaration)
    else:
        lines.append("    ARGUMENTS: ClassVar[tuple[tuple[str, str], ...]] = (")
        lines.extend(f'        ("{a.name}", "{a.amqp_type}"),' for a in m.arguments)
        lines.append("    )")
    lines.append("")
    if m.class_name == "connection":
        lines.append("    channel: int = field(default=0, kw_only=True)")
    else:
        lines.append("    channel: int = field(kw_only=True)")
    for a in m.arguments:
        annotation = TYPES[a.amqp_type][0]
        if a.default is None:
            lines.append(f"    {a.name}: {annotation}")
        elif a.default == "TABLE":
            lines.append(f"    {a.name}: {annotation} = field(default_factory=dict)")
        else:
            lines.append(f"    {a.name}: {annotation} = {a.default}")
    if m.content:
        lines.append("    properties: BasicProperties = field(default=NO_PROPERTIES, kw_only=True)")
        lines.append('    body: bytes = field(default=b"", kw_only=True)')
    return lines


def gen_decoder(m: MethodDef, structs: Structs) -> list[str]:
    if not m.arguments:
        return []
    lines = [
        f"def _decode_{m.snake}(src: bytes, pos: int, end: int) -> tuple[Any, ...]:",
    ]
    for kind, run in runs(m.arguments):
        if kind == "fixed":
            layout, items = fixed_layout(run)
            names = ["bits" if item[0].amqp_type == "bit" else item[0].name for item in items]
            bit_octets = sum(1 for item in items if item[0].amqp_type == "bit")
            if bit_octets > 1:
                raise SystemExit(f"{m.full_name}: two bit octets in one run is not supported")
            if layout == "B":  # one octet: indexing is cheaper than a struct
                lines.append(f"    {names[0]} = src[pos]")
                lines.append("    pos += 1")
            else:
                targets = ", ".join(names) + ("," if len(names) == 1 else "")
                if len(names) == 1:
                    targets = f"({targets})"
                lines.append(f"    {targets} = {structs.name(layout)}.unpack_from(src, pos)")
                lines.append(f"    pos += {calcsize('>' + layout)}")
            for item in items:
                if item[0].amqp_type == "bit":
                    for bit, arg in enumerate(item):
                        lines.append(f"    {arg.name} = bool(bits & {1 << bit})")
        elif kind == "shortstr":
            a = run[0]
            lines.append("    stop = pos + 1 + src[pos]")
            lines.append(f"    {a.name} = src[pos + 1 : stop].decode()")
            lines.append("    pos = stop")
        elif kind == "longstr":
            a = run[0]
            lines.append(f"    stop = pos + 4 + {structs.name('I')}.unpack_from(src, pos)[0]")
            lines.append(f"    {a.name} = src[pos + 4 : stop]")
            lines.append("    pos = stop")
        elif kind == "table":
            a = run[0]
            lines.append(f"    {a.name}, pos = read_table(src, pos, end)")
        else:  # pragma: no cover
            raise SystemExit(f"cannot decode {kind}")
    lines.append("    if pos != end:")
    lines.append("        raise arguments_end(pos, end)")
    values = ", ".join(a.name for a in m.arguments)
    if len(m.arguments) == 1:
        values += ","
    ret = f"    return ({values})"
    if len(ret) <= 100:
        lines.append(ret)
    else:
        lines.append("    return (")
        lines.extend(f"        {a.name}," for a in m.arguments)
        lines.append("    )")
    return lines


def gen_builder(m: MethodDef) -> list[str]:
    """A constructor for a content method's event that skips the frozen ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``; calling the
    slot descriptors directly builds the same object in half the time. It runs once
    per message received, and no check is skipped: the dataclass has none.
    """
    if not m.content:
        return []
    setters = f"_SET_{m.snake.upper()}"
    names = ["channel", *(a.name for a in m.arguments), "properties", "body"]
    lines = [
        f"{setters}: Final = tuple(",
        f"    {m.py_name}.__dict__[name].__set__ for name in ({json.dumps(names)[1:-1]})",
        ")",
        "",
        "",
        f"def _new_{m.snake}(",
        "    channel: int, args: tuple[Any, ...], properties: BasicProperties, body: bytes",
        f") -> {m.py_name}:",
        f"    event = _new({m.py_name})",
        f"    {', '.join(f'set_{n}' for n in names)} = {setters}",
        "    set_channel(event, channel)",
    ]
    for i, arg in enumerate(m.arguments):
        lines.append(f"    set_{arg.name}(event, args[{i}])")
    lines.append("    set_properties(event, properties)")
    lines.append("    set_body(event, body)")
    lines.append("    return event")
    return lines


def gen_encoder(m: MethodDef, structs: Structs) -> list[str]:
    if not m.arguments:
        return []
    lines = [f"def _encode_{m.snake}(m: {m.py_name}) -> bytes:"]
    parts: list[str] = []
    for kind, run in runs(m.arguments):
        if kind == "fixed":
            layout, items = fixed_layout(run)
            values = []
            for item in items:
                if item[0].amqp_type != "bit":
                    values.append(f"m.{item[0].name}")
                elif len(item) == 1:
                    values.append(f"1 if m.{item[0].name} else 0")
                else:  # several bits: build the octet first, one bit a line
                    lines.append(f"    bits = 1 if m.{item[0].name} else 0")
                    for i, arg in enumerate(item[1:], 1):
                        lines.append(f"    if m.{arg.name}:")
                        lines.append(f"        bits |= {1 << i}")
                    values.append("bits")
            parts.append(f"{structs.name(layout)}.pack({', '.join(values)})")
        elif kind == "shortstr":
            a = run[0]
            var = f"{a.name}_"
            lines.append(f"    {var} = m.{a.name}.encode()")
            parts.append(f"{structs.name('B')}.pack(len({var}))")
            parts.append(var)
        elif kind == "longstr":
            a = run[0]
            parts.append(f"{structs.name('I')}.pack(len(m.{a.name}))")
            parts.append(f"m.{a.name}")
        elif kind == "table":
            parts.append(f"encode_table(m.{run[0].name})")
    if len(parts) == 1:
        lines.append(f"    return {parts[0]}")
        if len(lines[-1]) > 100:  # pragma: no cover
            raise SystemExit(f"{m.full_name}: encoder line too long")
        return lines
    joined = f'    return b"".join(({", ".join(parts)}))'
    if len(joined) <= 100:
        lines.append(joined)
        return lines
    inner = ", ".join(parts)
    if len(inner) + 12 <= 100:
        lines.append('    return b"".join(')
        lines.append(f"        ({inner})")
        lines.append("    )")
        return lines
    lines.append('    return b"".join(')
    lines.append("        (")
    lines.extend(f"            {part}," for part in parts)
    lines.append("        )")
    lines.append("    )")
    return lines


HEADER = '''\
# Generated by scripts/gen_amqp.py from {source}: do not edit.
# Change the generator and run: python scripts/gen_amqp.py PATH/TO/{source}
"""The AMQP 0-9-1 methods, with RabbitMQ's extensions: one frozen dataclass each.

Every class carries the spec's description of its method (:class:`Method`); the
fields are the arguments in wire order, then ``channel`` (keyword-only),
then ``properties`` and ``body`` for the four methods that carry content. Field
names are the spec's, with ``-`` as ``_`` (``global`` is ``global_``); the
deprecated "reserved" arguments keep their 0-8 names (``ticket``, ``insist``...).

The codecs below read and write the arguments only (not the class and method ids):
``_decode_x(src, pos, end)`` returns them as a tuple, in field order, and raises
``struct.error``/``IndexError``/``ValueError`` when the bytes are malformed, which
the connection turns into a frame error; ``_encode_x(method)`` returns bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from struct import Struct
from typing import Any, ClassVar, Final, TypeAlias

from ._events import ContentMethod, Method
from ._fields import FieldTable, arguments_end, encode_table, read_table
from ._properties import NO_PROPERTIES, BasicProperties

_new: Final = object.__new__
_Builder: TypeAlias = Callable[[int, tuple[Any, ...], BasicProperties, bytes], Method]
'''


def generate(methods: list[MethodDef], source: str) -> str:
    structs = Structs()
    classes: list[str] = []
    codecs: list[str] = []
    for m in methods:
        classes.extend(["", "", *gen_class(m)])
        decoder = gen_decoder(m, structs)
        encoder = gen_encoder(m, structs)
        builder = gen_builder(m)
        for function in (decoder, encoder, builder):
            if function:
                codecs.extend(["", "", *function])
    names = [m.py_name for m in methods]
    out = [HEADER.format(source=source).rstrip("\n"), ""]
    out.extend(structs.source())
    out.extend(classes)
    out.extend(codecs)
    out.extend(
        [
            "",
            "",
            "def _decode_nothing(src: bytes, pos: int, end: int) -> tuple[Any, ...]:",
            "    if pos != end:",
            "        raise arguments_end(pos, end)",
            "    return ()",
            "",
            "",
            "def _encode_nothing(m: Method) -> bytes:",
            '    return b""',
            "",
            "",
            "METHODS: Final[tuple[type[Method], ...]] = (",
            *(f"    {name}," for name in names),
            ")",
            '"""Every method class, in the order of the spec."""',
            "",
            "DECODERS: Final[dict[type[Method], Callable[[bytes, int, int], tuple[Any, ...]]]] = {",
            *(
                f"    {m.py_name}: _decode_{m.snake if m.arguments else 'nothing'},"
                for m in methods
            ),
            "}",
            "",
            "CONTENT_BUILDERS: Final[dict[type[Method], _Builder]] = {",
            *(f"    {m.py_name}: _new_{m.snake}," for m in methods if m.content),
            "}",
            '"""Fast constructors of the content methods: (channel, args, properties, body)."""',
            "",
            "ENCODERS: Final[dict[type[Method], Callable[[Any], bytes]]] = {",
            *(
                f"    {m.py_name}: _encode_{m.snake if m.arguments else 'nothing'},"
                for m in methods
            ),
            "}",
            "",
            "__all__ = [",
            *(f'    "{name}",' for name in sorted(names)),
            "]",
        ]
    )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="amqp-rabbitmq-0.9.1.json")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    methods = load(args.spec)
    args.output.write_text(generate(methods, args.spec.name))
    formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(args.output)])
    if formatted.returncode != 0:
        print("warning: ruff format failed; format the output before committing it")
    print(f"wrote {len(methods)} methods to {args.output}")


if __name__ == "__main__":
    main()
