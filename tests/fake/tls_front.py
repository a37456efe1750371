"""A TLS front for tests: terminates TLS on a loopback port and passes the bytes to a plain TCP
upstream, or, with --connect-proxy, is an HTTP CONNECT proxy (plain TCP) that logs each tunnel.

    tls_front.py --upstream PORT --cert C --key K     # TLS in, plain TCP to 127.0.0.1:PORT
    tls_front.py --connect-proxy --log FILE           # "CONNECT host:port" lines to FILE

Prints "PORT n" once listening; exits when its stdin closes (the test holds it open), so it never
outlives the test. Run with /usr/bin/python3 (standard library only).
"""
import argparse
import asyncio
import os
import ssl
import sys
import threading


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def splice(reader, writer, host, port):
    try:
        up_r, up_w = await asyncio.open_connection(host, port)
    except OSError:
        writer.close()
        return None
    await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", type=int)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--connect-proxy", action="store_true")
    p.add_argument("--log")
    a = p.parse_args()

    async def tls_handle(reader, writer):
        await splice(reader, writer, "127.0.0.1", a.upstream)

    async def proxy_handle(reader, writer):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await reader.read(4096)
            if not chunk:
                writer.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target = line.split(" ")[:2]
        with open(a.log, "a") as f:
            f.write(f"{method} {target}\n")
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        try:
            up_r, up_w = await asyncio.open_connection(host.strip("[]"), int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def serve():
        if a.connect_proxy:
            srv = await asyncio.start_server(proxy_handle, "127.0.0.1", 0)
        else:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(a.cert, a.key)
            srv = await asyncio.start_server(tls_handle, "127.0.0.1", 0, ssl=ctx)
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        await srv.serve_forever()

    def watch_stdin():
        while os.read(0, 4096):
            pass
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
