"""``concierge``: the command-line tool (listen, send, share, get, ls, rm, services, clients).

Output goes to stdout one flushed line at a time; progress bars go to stderr, only when
it is a terminal (or with ``--progress``); any failure prints one line ``error: <reason>``
to stderr and exits with one of the codes in :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
from tqdm import tqdm

from concierge_client import __version__
from concierge_client.client import ConciergeClient
from concierge_client.errors import (
    CannotConnect,
    ChecksumMismatch,
    ConciergeError,
    ConnectionClosed,
    FileNotFound,
    HttpError,
    InvalidName,
    InvalidService,
    InvalidUuid,
    NotConnected,
    RequestTimeout,
    TransferAborted,
)
from concierge_client.events import Connected, Disconnected, Event, Message
from concierge_client.files import FileApi, split_remote
from concierge_client.urls import DEFAULT_URL, Endpoints

OK = 0
FAILED = 1
USAGE = 2
CONNECTION = 3
INTEGRITY = 4
NOT_FOUND = 5
INTERRUPTED = 130

EXIT_CODES = {
    OK: "success (for listen and share: stopped by SIGINT or SIGTERM)",
    FAILED: "the server refused the request, or a local file could not be read or written",
    USAGE: "wrong command-line arguments",
    CONNECTION: "the server could not be reached, refused the IDENTIFY (close code), or the connection was lost",
    INTEGRITY: "a checksum did not match, or a transfer stopped before its end",
    NOT_FOUND: "no such client, service or file",
    INTERRUPTED: "interrupted (SIGINT) during a command that is not meant to run until interrupted",
}


class Failure(Exception):
    """A failure of the command itself (reason, exit code)."""

    def __init__(self, reason: str, code: int = FAILED) -> None:
        super().__init__(reason)
        self.code = code


def out(line: str) -> None:
    """One line on stdout, flushed at once (scripts read the output line by line).

    When the reader has gone (``concierge listen | head -n 3``), stdout is pointed at
    /dev/null and the process stops as on SIGTERM."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        os.kill(os.getpid(), signal.SIGTERM)


def exit_code(error: BaseException) -> int:
    """The exit code for an error (see EXIT_CODES)."""
    if isinstance(error, Failure):
        return error.code
    if isinstance(error, HttpError):
        return NOT_FOUND if error.status == 404 else FAILED
    if isinstance(error, InvalidName | InvalidUuid | InvalidService | FileNotFound):
        return NOT_FOUND
    if isinstance(error, ChecksumMismatch | TransferAborted):
        return INTEGRITY
    if isinstance(error, CannotConnect | ConnectionClosed | NotConnected | RequestTimeout | httpx.TransportError):
        return CONNECTION
    return FAILED


# -- Arguments ----------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        sys.exit(USAGE)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("CONCIERGE_URL", DEFAULT_URL),
        help="the server's base URL, http(s)://host:port (default: $CONCIERGE_URL or %(default)s)",
    )
    common.add_argument(
        "--secret",
        default=os.environ.get("CONCIERGE_SECRET"),
        help="the server's IDENTIFY secret, if it has one (default: $CONCIERGE_SECRET)",
    )
    common.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply (default: 30)")
    common.add_argument("--verbose", "-v", action="store_true", help="log the client's warnings to stderr")
    bars = common.add_mutually_exclusive_group()
    bars.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars on stderr even when it is not a terminal",
    )
    bars.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    keyed = Parser(add_help=False)
    keyed.add_argument(
        "--key",
        default=os.environ.get("CONCIERGE_KEY"),
        help="use this live client's key for the file API instead of connecting a short-lived "
        "client (default: $CONCIERGE_KEY; see share --key-file)",
    )

    parser = Parser(
        prog="concierge",
        description="Talk to a concierge server: messages, services, files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n" + "\n".join(f"  {code:>3}  {what}" for code, what in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"concierge-client {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    listen = commands.add_parser(
        "listen",
        parents=[common],
        help="print events and messages until interrupted",
        description="Connect and print every event and message as one line of JSON "
        "(or readable with --pretty) until SIGINT or SIGTERM.",
    )
    listen.add_argument("--name", help="client name (default: a random cli_ name)")
    listen.add_argument("--nickname")
    listen.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    listen.add_argument(
        "--subscribe", action="append", default=[], metavar="SERVICE", help="subscribe to this service (repeatable)"
    )
    listen.add_argument("--pretty", action="store_true", help="readable lines instead of JSON")
    listen.add_argument("--resume", action="store_true", help="ask for a resumable session")

    send = commands.add_parser(
        "send",
        parents=[common],
        help="send one message",
        description="Send DATA (JSON if it parses as JSON, else a string) and wait for OK.",
    )
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="NAME", help="a client, by name")
    target.add_argument("--uuid", help="a client, by public id")
    target.add_argument("--all", action="store_true", help="every client")
    target.add_argument("--service", metavar="S", help="a service's owner (the short-lived client subscribes first)")
    send.add_argument("--string", action="store_true", help="send DATA as a string even if it is valid JSON")
    send.add_argument("--name", help="client name (default: a random cli_ name)")
    send.add_argument("data", metavar="DATA")

    share = commands.add_parser(
        "share",
        parents=[common],
        help="upload files and keep them available",
        description="Connect, upload each FILE into the client's folder, print one line per "
        "file with its URL, and stay connected (the folder lives as long as the "
        "connection) until SIGINT or SIGTERM, then close with code 1000.",
    )
    share.add_argument("files", nargs="+", metavar="FILE")
    share.add_argument("--name", help="client name, the folder's name (default: a random cli_ name)")
    share.add_argument(
        "--as",
        dest="as_path",
        metavar="PATH",
        help="the path in the folder (one FILE), or the folder to put them in (ending in /)",
    )
    share.add_argument(
        "--key-file", type=Path, help="write the client's file-API key to this file (mode 0600), for rm --key"
    )
    share.add_argument(
        "--chunk-size",
        type=int,
        default=16,
        metavar="MIB",
        help="resumable-upload chunk (MiB); larger files go by tus (default: 16)",
    )

    get = commands.add_parser(
        "get",
        parents=[common, keyed],
        help="download a file",
        description="Download CLIENT/PATH with a progress bar, continuing a partial FILE.part "
        "left by an interrupted run, and verify its SHA-256; prints "
        "'<file> <size> sha256:<hex>'.",
    )
    get.add_argument("remote", metavar="CLIENT/PATH")
    get.add_argument("-o", "--output", type=Path, metavar="FILE", help="where to write (default: the base name)")
    get.add_argument("--restart", action="store_true", help="ignore a partial file and download from the start")

    ls = commands.add_parser(
        "ls",
        parents=[common, keyed],
        help="list folders and files",
        description="List the live clients' folders, or CLIENT[/FOLDER]: one line per entry, "
        "'<type>\\t<size>\\t<name>' (size '-' for folders), or JSON with --json.",
    )
    ls.add_argument("path", nargs="?", default="", metavar="CLIENT[/FOLDER]")
    ls.add_argument("--json", action="store_true", help="one JSON object per entry")

    rm = commands.add_parser(
        "rm",
        parents=[common, keyed],
        help="delete files",
        description="Delete CLIENT/PATH. Only the folder's owner may: give its key with --key "
        "(share --key-file writes it).",
    )
    rm.add_argument("remotes", nargs="+", metavar="CLIENT/PATH")

    services = commands.add_parser(
        "services",
        parents=[common],
        help="list services",
        description="One line per service: '<name>\\t<nickname>\\t<owner uuid>\\t<subscribers>', or JSON with --json.",
    )
    services.add_argument("--json", action="store_true")

    clients = commands.add_parser(
        "clients",
        parents=[common],
        help="list connected clients",
        description="One line per client: '<name>\\t<nickname>\\t<public uuid>\\t<tags>', or JSON with --json.",
    )
    clients.add_argument("--json", action="store_true")
    return parser


# -- Helpers ------------------------------------------------------------------------------


def random_name() -> str:
    return f"cli_{uuid.uuid4().hex[:12]}"


def make_client(
    args: argparse.Namespace,
    *,
    name: str | None = None,
    reconnect: bool = False,
    resume: bool = False,
    nickname: str | None = None,
    tags: Sequence[str] = (),
) -> ConciergeClient:
    try:
        Endpoints.from_url(args.url)
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    return ConciergeClient(
        args.url,
        name or random_name(),
        nickname=nickname,
        tags=tags,
        secret=args.secret,
        reconnect=reconnect,
        resume=resume,
        request_timeout=args.timeout,
    )


def show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress) if args.progress is not None else sys.stderr.isatty()


class Bar:
    """A tqdm bar on stderr for one transfer (or nothing, when bars are off)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: tqdm[Any] | None = None
        self.enabled = enabled
        self.label = label

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=self.label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
        elif total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


async def run_until_signalled(client: ConciergeClient, work: Coroutine[Any, Any, None] | None = None) -> None:
    """Do ``work``, then stay connected, until SIGINT or SIGTERM; then close with 1000.

    Raises the error of ``work``, or the reason the client stopped for good.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    try:
        if work is not None:
            task = asyncio.create_task(work)
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # signalled in the middle of the work
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                task.result()
        if not stop.is_set():
            stopped = asyncio.create_task(client.wait_closed())
            await asyncio.wait({stopped, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                error = client.close_error
                await client.close()
                raise error or NotConnected("the connection ended")
            stopped.cancel()
        await client.close(1000)
    finally:
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


# -- Commands -------------------------------------------------------------------------------


def event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, Connected):
        hello = event.hello
        return {
            "type": "connected",
            "client": hello.raw.get("client"),
            "reconnected": event.reconnected,
            "resumed": event.resumed,
            "recovered": event.recovered,
            "missed": event.missed,
        }
    if isinstance(event, Disconnected):
        return {"type": "disconnected", "code": event.code, "reason": event.reason, "retry_in": event.retry_in}
    raw: dict[str, Any] = getattr(event, "raw", {})
    return raw


def event_text(event: Event) -> str:
    if isinstance(event, Message):
        via = f" via {event.service.name}" if event.service else ""
        who = event.origin.nickname or event.origin.name
        return f"MESSAGE from {who} ({event.origin.name}){via}: {json.dumps(event.data)}"
    if isinstance(event, Connected):
        how = "resumed" if event.resumed else ("reconnected" if event.reconnected else "connected")
        client = event.hello.client
        return f"{how} as {client.name if client else '?'}" + (f" ({event.missed} missed)" if event.resumed else "")
    if isinstance(event, Disconnected):
        after = f", retrying in {event.retry_in:.1f} s" if event.retry_in is not None else ""
        return f"disconnected (code {event.code}{': ' + event.reason if event.reason else ''}){after}"
    data = event_json(event)
    client = data.get("client")
    service = data.get("service")
    parts = [str(data.get("type"))]
    if isinstance(client, dict):
        parts.append(f"client {client.get('name')}")
    if isinstance(service, dict):
        parts.append(f"service {service.get('name')}")
    return " ".join(parts) if len(parts) > 1 else json.dumps(data)


async def cmd_listen(args: argparse.Namespace) -> int:
    client = make_client(
        args, name=args.name, reconnect=True, resume=args.resume, nickname=args.nickname, tags=args.tag
    )
    render = event_text if args.pretty else (lambda e: json.dumps(event_json(e)))
    client.on("*", lambda event: out(render(event)))
    await client.connect()

    async def subscribe() -> None:
        for service in args.subscribe:
            await client.subscribe(service)

    try:
        await run_until_signalled(client, subscribe())
    except BaseException:
        await client.close()
        raise
    return OK


def parse_data(text: str, as_string: bool) -> Any:
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


async def cmd_send(args: argparse.Namespace) -> int:
    data = parse_data(args.data, args.string)
    async with make_client(args, name=args.name) as client:
        if args.all:
            await client.broadcast(data)
        elif args.service:
            await client.subscribe(args.service)  # a subscriber's message goes to the service's owner
            await client.send_to_service(args.service, data)
        elif args.uuid:
            await client.send_to_uuid(args.uuid, data)
        else:
            await client.send_to(args.to, data)
    return OK


def share_targets(files: Sequence[str], as_path: str | None) -> list[tuple[Path, str]]:
    paths = [Path(f) for f in files]
    for path in paths:
        if not path.is_file():
            raise Failure(f"{path}: not a file")
    if as_path is None:
        return [(p, p.name) for p in paths]
    if as_path.endswith("/"):
        return [(p, as_path.lstrip("/") + p.name) for p in paths]
    if len(paths) > 1:
        raise Failure("--as names one file; for several, give a folder ending in /", USAGE)
    return [(paths[0], as_path.lstrip("/"))]


async def upload_all(client: ConciergeClient, targets: list[tuple[Path, str]], args: argparse.Namespace) -> None:
    for source, target in targets:
        bar = Bar(show_progress(args), source.name)
        try:
            uploaded = await client.files.upload(source, target, progress=bar, chunk_size=args.chunk_size * 2**20)
        finally:
            bar.close()
        out(uploaded.url)


def write_key(path: Path, key: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


async def cmd_share(args: argparse.Namespace) -> int:
    targets = share_targets(args.files, args.as_path)
    client = make_client(args, name=args.name, reconnect=True)
    await client.connect()

    async def upload() -> None:
        if args.key_file:
            await asyncio.to_thread(write_key, args.key_file, client.key)
        await upload_all(client, targets, args)

    async def again(event: Connected) -> None:
        # A new session has a new, empty folder (and a new key): upload the files again.
        if event.reconnected and not event.resumed:
            await upload()

    async def start() -> None:
        await upload()
        client.on(Connected, again)

    try:
        await run_until_signalled(client, start())
    except BaseException:
        await client.close()
        raise
    return OK


@contextlib.asynccontextmanager
async def file_api(args: argparse.Namespace) -> Any:
    """The file API with ``--key``, or with a short-lived client's key."""
    if args.key:
        api = FileApi(Endpoints.from_url(args.url), key=args.key, owner="")
        try:
            yield api
        finally:
            await api.aclose()
        return
    async with make_client(args) as client:
        yield client.files


async def cmd_get(args: argparse.Namespace) -> int:
    try:
        _, path = split_remote(args.remote)
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    dest: Path = args.output or Path(path.rsplit("/", 1)[-1])
    bar = Bar(show_progress(args), dest.name)
    async with file_api(args) as files:
        try:
            result = await files.download(args.remote, dest, progress=bar, resume=not args.restart)
        finally:
            bar.close()
    out(f"{result.path} {result.size} sha256:{result.sha256}")
    return OK


async def cmd_ls(args: argparse.Namespace) -> int:
    async with file_api(args) as files:
        listing = await files.list(args.path)
    for entry in listing.entries:
        if args.json:
            out(
                json.dumps(
                    {
                        "path": entry.path,
                        "type": entry.type,
                        "size_bytes": entry.size_bytes,
                        "permissions": entry.permissions,
                        "file_id": entry.file_id,
                        "content_type": entry.content_type,
                        "modified": entry.modified,
                    }
                )
            )
        else:
            size = "-" if entry.size_bytes is None else str(entry.size_bytes)
            out(f"{'dir' if entry.is_dir else 'file'}\t{size}\t{entry.path}{'/' if entry.is_dir else ''}")
    return OK


async def cmd_rm(args: argparse.Namespace) -> int:
    try:
        remotes = [split_remote(r) for r in args.remotes]
    except ValueError as exc:
        raise Failure(str(exc), USAGE) from None
    async with file_api(args) as files:
        for client, path in remotes:
            await files.delete(path, client)
    return OK


async def cmd_services(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        services = await client.fetch_services()
    for service in services:
        if args.json:
            out(
                json.dumps(
                    {
                        "name": service.name,
                        "nickname": service.nickname,
                        "owner_uuid": service.owner_uuid,
                        "subscribers": list(service.subscribers),
                    }
                )
            )
        else:
            out(f"{service.name}\t{service.nickname or ''}\t{service.owner_uuid}\t{len(service.subscribers)}")
    return OK


async def cmd_clients(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        me = client.info.uuid
        clients = [c for c in await client.fetch_clients() if c.uuid != me]
    for info in clients:
        if args.json:
            out(json.dumps({"name": info.name, "nickname": info.nickname, "uuid": info.uuid, "tags": list(info.tags)}))
        else:
            out(f"{info.name}\t{info.nickname or ''}\t{info.uuid}\t{','.join(info.tags)}")
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "listen": cmd_listen,
    "send": cmd_send,
    "share": cmd_share,
    "get": cmd_get,
    "ls": cmd_ls,
    "rm": cmd_rm,
    "services": cmd_services,
    "clients": cmd_clients,
}


def one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("concierge_client")
    logger.propagate = False
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("concierge: %(message)s"))
        logger.addHandler(handler)
    else:
        logger.addHandler(logging.NullHandler())
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return INTERRUPTED
    except (ConciergeError, Failure, OSError, ValueError, httpx.HTTPError) as error:
        sys.stderr.write(f"error: {one_line(error)}\n")
        return exit_code(error)
    except Exception as error:  # a bug: still one line, and a failure
        sys.stderr.write(f"error: unexpected {type(error).__name__}: {one_line(error)}\n")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
