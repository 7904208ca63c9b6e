"""A WebSocket peer written with Python `websockets` (asyncio API), for nursery-net's interop tests.

It is a peer nobody in this project wrote: the tests prove nursery-net against it.

    ws_peer.py server MODE [options]   listen on 127.0.0.1:0, print `ready <port>`
    ws_peer.py client MODE URL [options]   connect to URL, print `ready <local port>`

With --cert/--key the server serves wss:// (TLS); a client given a wss:// URL trusts --ca.

Every event is one line on stdout, flushed at once (so a kill -9 loses no logged line):

    ready <port>
    conn <n>                      connection n (1, 2, ...) opened (or its request arrived)
    recv <n> <text>               a message received on connection n
    sending <n> <text>            about to send a message (logged before the send, so a
                                  message sent is always logged)
    sent <n> <text>               the send returned
    unsent <n> <text>             the send failed: the connection was closed (chaos)
    raw <n> <hex>                 raw bytes written to the transport (an invalid frame)
    reject <n> <status>           an HTTP response instead of the upgrade
    closed <n> <code> <reason>    the connection ended; the close code received (1006: none)
    aborted <n>                   the transport was aborted (no close frame)
    error <n> <text>              an exception on connection n

Server modes:
    echo          echo every message
    burst-close   on the first message, send --count numbered messages, then close with
                  --code / --reason
    burst-abort   on the first message, send --count numbered messages, wait until the
                  transport has handed them to the kernel, then abort (no close frame)
    invalid       on the first message, send --count numbered messages, then write the raw
                  frame --frame (opcode: a reserved opcode, rsv: RSV bits set, utf8: invalid
                  UTF-8 in a text frame) and wait for the other side to close
    silent        accept TCP and never answer (nor read) the upgrade request
    accept-close  complete the upgrade and close (1000) at once
    reject        answer the upgrade with HTTP --status (default 403)
    busy          answer the upgrade with HTTP 503 and `Retry-After: --retry-after`
    chaos         see `chaos_handler`: numbered messages both ways, faults on request

Client modes (URL of nursery-net's `WsConnection::accept` server):
    echo          send --count numbered messages, read as many echoes, close with --code
    burst-close   send --count numbered messages, then close with --code / --reason at once
    burst-abort   send --count numbered messages, wait until they reached the kernel, abort
    invalid       send --count numbered messages, then the raw (masked) frame --frame
    silent        open the TCP connection and send nothing
    trickle       open the TCP connection and send an upgrade request one byte every 0.5 s
    hold          complete the upgrade, send --count messages, then read forever
"""

import argparse
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

COUNTER = {"conn": 0}

# Unmasked (server) frames, FIN set: a reserved opcode (0xB), RSV1-3 on an empty text frame,
# a text frame of invalid UTF-8.
SERVER_FRAMES = {
    "opcode": bytes([0x8B, 0x00]),
    "rsv": bytes([0xF1, 0x00]),
    "utf8": bytes([0x81, 0x02, 0xFF, 0xFE]),
}


def masked(frame):
    """The same frame from a client: mask bit set, mask key 0 (the payload is unchanged)."""
    head, length, payload = frame[0], frame[1], frame[2:]
    return bytes([head, 0x80 | length, 0, 0, 0, 0]) + payload


def log(*parts):
    # One write per line: a kill -9 can then end the log only between lines.
    sys.stdout.write(" ".join(str(part) for part in parts) + "\n")
    sys.stdout.flush()


async def drained(transport):
    """Waits until asyncio has handed everything written to the kernel."""
    while transport.get_write_buffer_size() > 0:
        await asyncio.sleep(0.001)


async def burst(ws, n, count):
    for i in range(count):
        text = str(i)
        log("sending", n, text)
        await ws.send(text)
        log("sent", n, text)


def log_closed(ws, n):
    log("closed", n, ws.close_code if ws.close_code is not None else 1006, ws.close_reason or "")


async def read_forever(ws, n):
    try:
        async for message in ws:
            log("recv", n, message)
    except ConnectionClosed:
        pass


def server_handler(args):
    async def handler(ws):
        COUNTER["conn"] += 1
        n = COUNTER["conn"]
        tag = {"n": n}
        log("conn", n)
        try:
            if args.mode == "echo":
                async for message in ws:
                    log("recv", n, message)
                    log("sending", n, message)
                    await ws.send(message)
                    log("sent", n, message)
            elif args.mode == "accept-close":
                await ws.close(1000)
            elif args.mode == "chaos":
                await chaos_handler(ws, tag, args)
            else:
                first = await ws.recv()
                log("recv", n, first)
                await burst(ws, n, args.count)
                await finish(ws, n, args, SERVER_FRAMES)
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - logged for the test to see
            log("error", n, repr(e))
        finally:
            if args.mode != "burst-abort":
                await ws.wait_closed()
            log_closed(ws, tag["n"])

    return handler


async def finish(ws, n, args, frames):
    """The end of a burst: a close, an abort, or an invalid frame."""
    if args.mode == "burst-close":
        await ws.close(args.code, args.reason)
    elif args.mode == "burst-abort":
        await drained(ws.transport)
        ws.transport.abort()
        log("aborted", n)
    elif args.mode == "invalid":
        frame = frames[args.frame]
        await drained(ws.transport)
        ws.transport.write(frame)
        log("raw", n, frame.hex())
        await read_forever(ws, n)


async def chaos_handler(ws, tag, args):
    """Numbered messages both ways: every message `c<i>` from the client is logged and answered
    with the next --answers of this peer's own numbers, `p<seq>` (numbered across connections,
    from --start-seq). The client's first message, `hello <tag>`, names the connection in the log;
    `!fault <kind>` ends it: `close` (1001), `abort` (no close frame, after the kernel has
    everything), `invalid` (a reserved opcode). After a fault nothing more is sent (what
    arrives is still logged), so every `sending` line is a message that went out. The
    connection's `closed` line carries the tag."""
    faulted = False
    async for message in ws:
        if message.startswith("hello "):
            tag["n"] = message.split()[1]
            log("hello", tag["n"])
            continue
        n = tag["n"]
        if message.startswith("!fault "):
            kind = message.split()[1]
            log("fault", n, kind)
            faulted = True
            if kind == "close":
                await ws.close(1001, "chaos")
            elif kind == "abort":
                await drained(ws.transport)
                ws.transport.abort()
                log("aborted", n)
                return
            elif kind == "invalid":
                await drained(ws.transport)
                ws.transport.write(SERVER_FRAMES["opcode"])
                log("raw", n, SERVER_FRAMES["opcode"].hex())
            continue
        log("recv", n, message)
        for _ in range(args.answers):
            if faulted:
                break
            text = "p%d" % args.seq
            args.seq += 1
            log("sending", n, text)
            try:
                await ws.send(text)
            except ConnectionClosed:
                # This side may not send any more, but what arrived before the close is still
                # queued: log it.
                log("unsent", n, text)
                faulted = True


def process_request(args):
    def reject(connection, request):
        if args.mode not in ("reject", "busy"):
            return None
        COUNTER["conn"] += 1
        n = COUNTER["conn"]
        log("conn", n)
        if args.mode == "reject":
            log("reject", n, args.status)
            return connection.respond(args.status, "refused by the test peer\n")
        response = connection.respond(503, "busy\n")
        response.headers["Retry-After"] = str(args.retry_after)
        log("reject", n, 503)
        return response

    return reject


async def run_server(args):
    if args.mode == "silent":
        held = []

        async def hold(reader, writer):
            COUNTER["conn"] += 1
            log("conn", COUNTER["conn"])
            held.append(writer)  # never read, never answered, never closed

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
    else:
        server = await serve(
            server_handler(args),
            "127.0.0.1",
            0,
            process_request=process_request(args),
            compression=None,
            ping_interval=None,
            close_timeout=args.close_timeout,
            max_queue=None,
            ssl=server_tls(args),
        )
    port = server.sockets[0].getsockname()[1]
    log("ready", port)
    await asyncio.Future()


def server_tls(args):
    """With --cert/--key: serve wss:// with that certificate chain and key (PEM files)."""
    if not args.cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    return context


def client_tls(args):
    """For a wss:// URL: trust only --ca (a PEM file), if given."""
    if not args.url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=args.ca)
    return context


async def run_client(args):
    if args.mode in ("silent", "trickle"):
        reader, writer = await asyncio.open_connection(*host_port(args.url))
        log("ready", writer.get_extra_info("sockname")[1])
        log("conn", 1)
        if args.mode == "trickle":
            request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            for byte in request:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.5)
        await asyncio.Future()
    async with connect(
        args.url,
        ssl=client_tls(args),
        compression=None,
        ping_interval=None,
        close_timeout=args.close_timeout,
        max_queue=None,
    ) as ws:
        log("ready", ws.local_address[1])
        log("conn", 1)
        try:
            await client_body(ws, args)
        except ConnectionClosed:
            pass
        finally:
            if args.mode != "burst-abort":
                await ws.wait_closed()
            log_closed(ws, 1)
    await asyncio.Future() if args.linger else None


async def client_body(ws, args):
    await burst(ws, 1, args.count)
    if args.mode == "echo":
        for _ in range(args.count):
            log("recv", 1, await ws.recv())
        await ws.close(args.code, args.reason)
    elif args.mode == "hold":
        await read_forever(ws, 1)
    else:
        frames = {kind: masked(frame) for kind, frame in SERVER_FRAMES.items()}
        await finish(ws, 1, args, frames)


def host_port(url):
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("mode")
    parser.add_argument("url", nargs="?")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--code", type=int, default=1000)
    parser.add_argument("--reason", default="")
    parser.add_argument("--frame", choices=sorted(SERVER_FRAMES), default="opcode")
    parser.add_argument("--status", type=int, default=403)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--start-seq", dest="seq", type=int, default=0)
    parser.add_argument("--answers", type=int, default=1, help="chaos: answers per message")
    parser.add_argument("--close-timeout", type=float, default=60)
    parser.add_argument("--cert", help="server: serve TLS with this certificate chain (PEM)")
    parser.add_argument("--key", help="server: the certificate's private key (PEM)")
    parser.add_argument("--ca", help="client: the CA to trust for wss:// (PEM)")
    parser.add_argument("--linger", action="store_true", help="client: stay alive after closing")
    args = parser.parse_args()
    # A test that ends kills the peer; no traceback for that.
    try:
        asyncio.run(run_server(args) if args.role == "server" else run_client(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
