"""Peers for test/reset-while-writing.test.ts that tell a reset from an end of stream.

Each peer streams both ways and records the first sign of the end it gets on a connection:
RST (ECONNRESET on recv or send) or FIN (recv returns no bytes, or EPIPE on send, which Linux
gives after a FIN). They are Python, not Bun, because Bun 1.4.4 reports a reset that a failed
write took as an end of stream, so a Bun peer could not tell the two apart.

  python3 reset-peers.py backend-record N LIFE   listen, echo and stream; print the port, then
                                                 one outcome per connection
  python3 reset-peers.py backend-reset N LIFE    listen, echo and stream for 0.3 s per
                                                 connection, then reset it; print the port
  python3 reset-peers.py client-reset PORT N     N clients stream both ways for 0.3 s, then reset
  python3 reset-peers.py client-record PORT N    N clients stream both ways until the end; print
                                                 one outcome per client
  python3 reset-peers.py backend-noread N LIFE   listen, never read, stream; print the port, then
                                                 one outcome per connection: RST, FIN, or none
                                                 when it saw neither within LIFE seconds
  python3 reset-peers.py unix-reply PATH BYTES LIFE
                                                 listen on a Unix socket; read each connection's
                                                 request, send BYTES, then close it; print "ready"
  python3 reset-peers.py slow-read PORT N        N clients send a line, then read 64 KiB every
                                                 10 ms; print "EOF n" or "RST n" with the bytes
Every mode stops by itself within its LIFE seconds (clients: 15 s).
"""
import selectors
import socket
import struct
import sys
import time

BLOCK = b"x" * 65536


def first_sign(sock):
    """Streams on a readable and writable socket; returns RST, FIN or None while it is open."""
    try:
        data = sock.recv(262144)
        if not data:
            return "FIN"
    except BlockingIOError:
        pass
    except ConnectionResetError:
        return "RST"
    try:
        sock.send(BLOCK)
    except BlockingIOError:
        pass
    except ConnectionResetError:
        return "RST"
    except BrokenPipeError:
        return "FIN"
    return None


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def serve(count, life, resetting):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    server.setblocking(False)
    print(server.getsockname()[1], flush=True)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ, None)
    opened = {}
    recorded = 0
    deadline = time.time() + life
    while recorded < count and time.time() < deadline:
        for key, _ in selector.select(0.01):
            if key.data is None:
                conn, _ = server.accept()
                conn.setblocking(False)
                opened[conn] = time.time()
                selector.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, "conn")
                continue
            conn = key.fileobj
            if resetting and time.time() - opened[conn] > 0.3:
                selector.unregister(conn)
                reset(conn)
                recorded += 1
                continue
            sign = first_sign(conn)
            if sign is not None:
                selector.unregister(conn)
                conn.close()
                recorded += 1
                if not resetting:
                    print(sign, flush=True)


def clients(port, count, resetting):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in socks:
        sock.setblocking(False)
    if resetting:
        end = time.time() + 0.3
        while time.time() < end:
            for sock in socks:
                first_sign(sock)
        for sock in socks:
            reset(sock)
        return
    open_socks = set(socks)
    deadline = time.time() + 15
    while open_socks and time.time() < deadline:
        for sock in list(open_socks):
            sign = first_sign(sock)
            if sign is not None:
                open_socks.discard(sock)
                sock.close()
                print(sign, flush=True)
        time.sleep(0.001)


TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def serve_without_reading(count, life):
    """Streams to each connection and never reads; learns the end from send errors and TCP_INFO."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    server.setblocking(False)
    print(server.getsockname()[1], flush=True)

    opened = []
    deadline = time.time() + life
    while len(opened) < count and time.time() < deadline:
        try:
            conn, _ = server.accept()
            conn.setblocking(False)
            opened.append(conn)
        except BlockingIOError:
            time.sleep(0.001)

    outcomes = {}
    while len(outcomes) < len(opened) and time.time() < deadline:
        for conn in opened:
            if conn in outcomes:
                continue
            try:
                conn.send(BLOCK)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                outcomes[conn] = "RST"
                continue
            except BrokenPipeError:
                outcomes[conn] = "FIN"
                continue
            state = tcp_state(conn)
            if state == TCP_CLOSE:
                outcomes[conn] = "RST"
            elif state == TCP_CLOSE_WAIT:
                outcomes[conn] = "FIN"
        time.sleep(0.005)

    for conn in opened:
        print(outcomes.get(conn, "none"), flush=True)


def serve_reply(path, size, life):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(64)
    server.settimeout(0.1)
    print("ready", flush=True)
    deadline = time.time() + life
    while time.time() < deadline:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        conn.setblocking(True)
        # The request is read first: a close with unread bytes would reset the peer.
        conn.recv(64)
        conn.sendall(b"r" * size)
        conn.close()


def read_slowly(port, count):
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET\n")
        sock.setblocking(False)
    received = {sock: 0 for sock in socks}
    open_socks = set(socks)
    deadline = time.time() + 15
    while open_socks and time.time() < deadline:
        for sock in list(open_socks):
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                open_socks.discard(sock)
                print("RST %d" % received[sock], flush=True)
                continue
            if not data:
                open_socks.discard(sock)
                print("EOF %d" % received[sock], flush=True)
            received[sock] += len(data)
        time.sleep(0.01)


def main():
    mode = sys.argv[1]
    if mode in ("backend-record", "backend-reset"):
        serve(int(sys.argv[2]), float(sys.argv[3]), mode == "backend-reset")
    elif mode in ("client-reset", "client-record"):
        clients(int(sys.argv[2]), int(sys.argv[3]), mode == "client-reset")
    elif mode == "backend-noread":
        serve_without_reading(int(sys.argv[2]), float(sys.argv[3]))
    elif mode == "unix-reply":
        serve_reply(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "slow-read":
        read_slowly(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("unknown mode " + mode)


main()
