"""A grpcio server for /chain.Chain/Call: answers with the time it had left.

Prints its port on the first line, then serves until stdin closes. The reply is the Hop message
encoded by hand (no generated stubs): field 1 `remaining_ms` (varint), field 2 `by` (string).
"""
import sys
from concurrent import futures

import grpc


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def call(request, context):
    left = context.time_remaining()
    if left is None:
        by = b"python, no deadline"
        remaining_ms = 0
    else:
        by = b"python"
        remaining_ms = int(left * 1000)
    return b"\x08" + varint(remaining_ms) + b"\x12" + varint(len(by)) + by


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "chain.Chain", {"Call": grpc.unary_unary_rpc_method_handler(call)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
