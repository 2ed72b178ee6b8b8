"""A minimal SMTP sink over raw sockets: accepts everything, keeps nothing, counts messages.

Run as a separate process (python bench/rawsink.py PORT [LATENCY_MS]) so it does not share the
sender's GIL. It speaks just enough SMTP for smtplib: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT. LATENCY_MS delays each message's final reply, like a relay across a network: the
sender then waits rather than computes, which is what lets several workers scale on two cores.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

LATENCY = 0.0


def serve_client(conn: socket.socket, counter: list[int]) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(b"220 rawsink ESMTP\r\n")
    buf = b""
    in_data = False
    try:
        while True:
            chunk = conn.recv(262144)
            if not chunk:
                return
            buf += chunk
            while True:
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        if len(buf) > 8:
                            buf = buf[-8:]  # keep a tail: the terminator may straddle chunks
                        break
                    buf = buf[end + 5 :]
                    in_data = False
                    counter[0] += 1
                    if LATENCY:
                        time.sleep(LATENCY)
                    conn.sendall(b"250 2.0.0 queued\r\n")
                    continue
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    break
                line, buf = buf[:line_end], buf[line_end + 2 :]
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-rawsink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
                elif verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")
    except OSError:
        return
    finally:
        conn.close()


def main(port: int) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    counter = [0]
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve_client, args=(conn, counter), daemon=True).start()


if __name__ == "__main__":
    LATENCY = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    main(int(sys.argv[1]))
