"""A real gRPC server and client (grpcio) for the gateway's loopback tests.

No generated code: the echo service uses grpc's generic handlers with raw bytes, and the
standard health service comes with grpcio-health-checking.

    echo.py serve HOST:PORT   serves until stdin closes; prints "ready" once bound
    echo.py call HOST:PORT [CA NAME]
                              calls through HOST:PORT (with TLS: trusting the PEM file CA
                              for the server name NAME); prints one line per call
"""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "edgemesh.test.Echo"


def unary(request, context):
    if request == b"notfound":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return request


def stream(request, context):
    for i in range(int(request)):
        yield b"chunk-%d" % i


def serve(address):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 4 << 20)],
    )
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    if server.add_insecure_port(address) == 0:
        sys.exit(f"cannot bind {address}")
    server.start()
    print("ready", flush=True)
    # The test ends the server by closing stdin (or by killing it).
    sys.stdin.read()
    server.stop(0)


def channel_to(address, ca=None, name=None):
    if ca is None:
        return grpc.insecure_channel(address)
    with open(ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", name)])


def call(address, ca=None, name=None):
    with channel_to(address, ca, name) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        print("health", health_pb2.HealthCheckResponse.ServingStatus.Name(check.status), flush=True)
        echo = channel.unary_unary(f"/{SERVICE}/Unary")
        print("unary", echo(b"hello", timeout=10).decode(), flush=True)
        big = bytes(range(256)) * 4096  # 1 MiB
        answer = echo(big, timeout=20)
        print("big", len(answer), "same" if answer == big else "different", flush=True)
        chunks = list(channel.unary_stream(f"/{SERVICE}/Stream")(b"5", timeout=10))
        print("stream", " ".join(c.decode() for c in chunks), flush=True)
        try:
            echo(b"notfound", timeout=10)
            print("notfound answered", flush=True)
        except grpc.RpcError as error:
            print("notfound", error.code().name, error.details(), flush=True)


if __name__ == "__main__":
    {"serve": serve, "call": call}[sys.argv[1]](*sys.argv[2:])
