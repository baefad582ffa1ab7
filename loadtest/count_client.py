#!/usr/bin/env python3
"""Sends exactly N GET requests for PATH to HOST:PORT over one keep-alive connection, DEPTH
pipelined at a time, reads every answer (Content-Length framed) and prints how many were 200.
A fixed count of requests, for loadtest/callgrind.sh (wrk and oha run for a time instead).
With TLS=1 in the environment it speaks HTTP/1.1 over TLS (ALPN http/1.1, the certificate
not checked: a local test server's).

  loadtest/count_client.py 127.0.0.1:8080 /plaintext 20000 16
  TLS=1 loadtest/count_client.py 127.0.0.1:8443 /json 10000 1
"""
import os
import socket
import ssl
import sys


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    path, n, depth = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sock = socket.create_connection((host, int(port)), timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if os.environ.get("TLS"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        sock = ctx.wrap_socket(sock, server_hostname=host)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    buf, done, not_ok = b"", 0, 0
    while done < n:
        batch = min(depth, n - done)
        sock.sendall(request * batch)
        for _ in range(batch):
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    sys.exit(f"connection closed after {done} answers")
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 200"):
                not_ok += 1
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += sock.recv(65536)
            buf = buf[length:]
            done += 1
    print(f"{done} answers, {not_ok} not 200")
    if not_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
