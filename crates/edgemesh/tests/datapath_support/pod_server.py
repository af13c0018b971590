"""Every server a test pod runs, in one process (Debian's python3 + python3-websockets).

usage: pod_server.py NAME IP CERT KEY
  HTTP      IP:8080  answers "NAME\n" (HTTP/1.0: one request per connection); GET /peer
                     answers the client's address as this server sees it
  "wrong"   IP:8081  answers "wrong-NAME\n" (the target of fake kube-proxy rules)
  HTTPS     IP:8443  answers "NAME\n" over TLS (self-signed CERT/KEY)
  TCP echo  IP:9000  echoes until the client half-closes, then closes
  UDP echo  IP:9001  echoes each datagram
  WebSocket IP:8765  echoes "NAME:" + each message
Prints "pod NAME ready" once every socket is bound.
"""
import asyncio
import http.server
import socket
import socketserver
import ssl
import sys
import threading

import websockets

NAME, IP, CERT, KEY = sys.argv[1:5]


def http_handler(body):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            peer = self.client_address[0] + "\n"
            data = (peer if self.path == "/peer" else body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a test opening connections by the hundred would
    # see SYNs dropped and retried a second later.
    request_queue_size = 1024


def udp_echo(sock):
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()


async def ws_echo(websocket, path=None):
    async for message in websocket:
        await websocket.send(f"{NAME}:{message}")


async def main():
    serve(Server((IP, 8080), http_handler(NAME + "\n")))
    serve(Server((IP, 8081), http_handler("wrong-" + NAME + "\n")))
    https = Server((IP, 8443), http_handler(NAME + "\n"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    serve(https)
    serve(EchoServer((IP, 9000), Echo))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # SO_RCVBUFFORCE (root): bursts are judged at the agent, not at this pod.
    udp.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
    udp.bind((IP, 9001))
    threading.Thread(target=udp_echo, args=(udp,), daemon=True).start()
    async with websockets.serve(ws_echo, IP, 8765):
        print(f"pod {NAME} ready", flush=True)
        await asyncio.Future()


asyncio.run(main())
