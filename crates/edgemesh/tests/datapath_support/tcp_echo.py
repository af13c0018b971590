"""Echo server for bursts of connections: listens on IP:PORT with a backlog of 4096 (the pods'
server keeps socketserver's 5) and echoes every byte until the client closes. Prints "ready"."""
import asyncio
import resource
import sys

ip, port = sys.argv[1], int(sys.argv[2])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(echo, ip, port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
