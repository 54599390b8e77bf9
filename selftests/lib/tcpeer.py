#!/usr/bin/env python3
"""Small TCP peers for the shell tests: real sockets, nothing mocked.

  tcpeer.py echo PORT [--host H] [--ready FILE] [--log FILE]
      accept connections forever; echo every byte back on each (waiting in
      select() before each read, as RPC servers do); --log appends every
      chunk received, in hex, to FILE; a chunk holding CLOSE-NOW closes the
      connection instead of being echoed; --blocking-read reads at once,
      asleep in a blocking recv(), as a careless server does
  tcpeer.py talk HOST PORT HEX... [--hold SECS] [--gap SECS]
      connect, then for each HEX: send it and print what comes back (hex),
      one line per exchange; "-" if nothing came within 2 s, "EOF" at end of
      stream, "RST" on a reset. --hold keeps the connection open at the end.
  tcpeer.py probe HOST PORT [--prog P] [--vers V] [--xid X] [--wait SECS]
      send an AUTH_TLS probe (--wait: that long after connecting) and print
      the reply record as hex
"""
import os
import select
import socket
import struct
import sys
import threading
import time


def echo(args):
    port = int(args[0])
    host = args[args.index("--host") + 1] if "--host" in args else "::"
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((host, port))
    s.listen(128)
    if "--ready" in args:
        open(args[args.index("--ready") + 1], "w").write(str(os.getpid()))
    log = open(args[args.index("--log") + 1], "a") if "--log" in args else None

    def serve(c):
        # Wait in poll before each read, as RPC servers (libtirpc, ntirpc)
        # do: a reader blocked in recv() meets the sockhash's spurious
        # EAGAIN, and rpctls refuses to hand over under it.
        waits = "--blocking-read" not in args
        c.setblocking(not waits)
        try:
            while True:
                if waits:
                    select.select([c], [], [])
                try:
                    d = c.recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    break
                if log:
                    log.write(d.hex() + "\n")
                    log.flush()
                if b"CLOSE-NOW" in d:
                    break
                c.setblocking(True)
                c.sendall(d)
                c.setblocking(not waits)
        except OSError:
            pass
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def recv_some(c, timeout=2.0):
    out = b""
    end = time.time() + timeout
    while True:
        left = end - time.time()
        if left <= 0:
            break
        r, _, _ = select.select([c], [], [], left)
        if not r:
            break
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            return out, "RST"
        if not d:
            return out, "EOF"
        out += d
        end = min(end, time.time() + 0.2)  # a little more may follow
    return out, None


def options(args, names):
    """Split --name VALUE pairs out of args."""
    opts, rest, i = {}, [], 0
    while i < len(args):
        if args[i] in names:
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            rest.append(args[i])
            i += 1
    return opts, rest


def talk(args):
    opts, rest = options(args, ("--hold", "--gap"))
    host, port, msgs = rest[0], int(rest[1]), rest[2:]
    hold = float(opts.get("--hold", 0))
    gap = float(opts.get("--gap", 0))
    c = socket.create_connection((host, port), timeout=5)
    for m in msgs:
        if gap:
            time.sleep(gap)
        c.sendall(bytes.fromhex(m))
        data, end = recv_some(c)
        print(data.hex() if data else "-", flush=True)
        if end:
            print(end, flush=True)
            return
    if hold:
        time.sleep(hold)


def probe(args):
    host, port = args[0], int(args[1])
    prog = int(args[args.index("--prog") + 1]) if "--prog" in args else 100000
    vers = int(args[args.index("--vers") + 1]) if "--vers" in args else 4
    xid = int(args[args.index("--xid") + 1], 0) if "--xid" in args else 0x1234
    c = socket.create_connection((host, port), timeout=5)
    if "--wait" in args:
        time.sleep(float(args[args.index("--wait") + 1]))
    c.sendall(struct.pack(">11I", 0x80000028, xid, 0, 2, prog, vers, 0, 7, 0, 0, 0))
    data, end = recv_some(c)
    print(data.hex() if data else "-")
    if end:
        print(end)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"echo": echo, "talk": talk, "probe": probe}[cmd](rest)
