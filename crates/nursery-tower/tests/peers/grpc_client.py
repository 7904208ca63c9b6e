"""A grpcio client: calls /chain.Chain/Call once on ADDR with a deadline of TIMEOUT seconds.

Prints `OK <response hex>` or `ERR <status code name>`. No generated stubs: the request is an
empty message and the response stays raw bytes.
"""
import sys

import grpc


def main():
    addr, timeout = sys.argv[1], float(sys.argv[2])
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary("/chain.Chain/Call")
        try:
            reply = call(b"", timeout=timeout)
        except grpc.RpcError as e:
            print("ERR", e.code().name, flush=True)
            return
        print("OK", reply.hex(), flush=True)


if __name__ == "__main__":
    main()
