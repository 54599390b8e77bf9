#!/usr/bin/env python3
"""Read a packet capture with tshark and check RPC-with-TLS on the wire.

  capcheck.py FILE PORT [--expect-tls N] [--expect-plain N] [--forbid TEXT]...
                        [--transcript]

For every TCP connection to PORT, both directions are reassembled from the
segments (by sequence number, retransmissions counted once) and classified:
  tls    the client's first record is the AUTH_TLS probe, the server's is
         the STARTTLS reply, and after them every byte both ways is a
         sequence of well-formed TLS records (the last may be cut short by
         the end of the capture);
  plain  anything else (no probe, or a refused one).
Exits 1 when a connection starts TLS and then carries anything but TLS
records, when the counts differ from --expect-*, or when a --forbid text
occurs anywhere in a TCP payload (a secret that must never be on the wire).
Prints one line per connection and a summary; --transcript first prints, per
connection, every RPC record and TLS record in the order they crossed the
wire, with the frame that carried their first byte.
"""
import subprocess
import sys

PROBE_LEN = 44
STARTTLS_REPLY_LEN = 36


def streams(path, port):
    out = subprocess.run(
        ["tshark", "-r", path, "-o", "tcp.relative_sequence_numbers:TRUE", "-T", "fields",
         "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq",
         "-e", "tcp.payload", "-e", "frame.number", "-e", "ip.src", "-e", "ipv6.src",
         "-e", "ip.dst", "-e", "ipv6.dst", f"tcp.port == {port}"],
        capture_output=True, text=True, check=True).stdout
    conns = {}
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) < 10:
            continue
        sid, sport, dport, seq, payload = int(f[0]), int(f[1]), int(f[2]), int(f[3]), f[4]
        c = conns.setdefault(sid, {"c2s": {}, "s2c": {}, "frames": {"c2s": {}, "s2c": {}}})
        if "name" not in c and dport == port:
            src, dst = f[6] or f[7], f[8] or f[9]
            c["name"] = f"{src}:{sport} -> {dst}:{dport}"
        if payload:
            d = "c2s" if dport == port else "s2c"
            c[d][seq] = bytes.fromhex(payload.replace(":", ""))
            c["frames"][d][seq] = int(f[5])
    return conns


def frame_of(c, d, off):
    """The frame that carried byte @off of direction @d."""
    best = None
    for seq in sorted(c["frames"][d]):
        if seq - 1 <= off:
            best = c["frames"][d][seq]
    return best or 0


HS = {1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 8: "EncryptedExtensions",
      11: "Certificate", 13: "CertificateRequest", 15: "CertificateVerify", 20: "Finished"}
CT = {20: "ChangeCipherSpec", 21: "alert", 22: "handshake", 23: "application data (encrypted)"}


def records(c, d, data, start, label_first):
    """(frame, direction, text) for each record of one direction."""
    out, i = [], 0
    if label_first:
        out.append((frame_of(c, d, 1), d, label_first[1]))
        i = label_first[0]
    while i + 5 <= len(data):
        t, n = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        what = CT.get(t, f"type {t}")
        if t == 22 and i + 5 < len(data):
            what += f" ({HS.get(data[i + 5], data[i + 5])}, unencrypted)"
        out.append((frame_of(c, d, i + 1), d, f"TLS {what}, {n} bytes"))
        i += 5 + n
    return out


def transcript(sid, c, c2s, s2c, tls):
    print(f"connection {sid}: {c.get('name', '?')}")
    if tls:
        ev = records(c, "c2s", c2s, 0, (PROBE_LEN, "RPC call, NULL procedure, AUTH_TLS credential: the probe")) + \
             records(c, "s2c", s2c, 0, (STARTTLS_REPLY_LEN, 'RPC reply, verifier "STARTTLS"'))
    else:
        ev = [(frame_of(c, "c2s", 1), "c2s", f"{len(c2s)} bytes, not RPC-with-TLS (no probe, or no STARTTLS)")]
        if s2c:
            ev.append((frame_of(c, "s2c", 1), "s2c", f"{len(s2c)} bytes"))
    for frame, d, text in sorted(ev, key=lambda e: e[0]):
        print(f"  frame {frame:4}  {'client -> server' if d == 'c2s' else 'server -> client'}  {text}")


def reassemble(segs):
    data, nxt = b"", None
    for seq in sorted(segs):
        seg = segs[seq]
        if nxt is None:
            nxt = seq
        if seq > nxt:          # a hole: the capture missed bytes
            break
        data += seg[nxt - seq:]
        nxt = max(nxt, seq + len(seg))
    return data


def tls_ok(b):
    """Well-formed TLS records all the way (a cut last record is allowed)."""
    i = 0
    while i + 5 <= len(b):
        t, major, n = b[i], b[i + 1], int.from_bytes(b[i + 3:i + 5], "big")
        if t not in (20, 21, 22, 23) or major != 3 or n == 0 or n > 16384 + 256:
            return False, i
        i += 5 + n
    return True, i


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    want_tls = want_plain = None
    forbid = []
    show = "--transcript" in sys.argv
    a = [x for x in sys.argv[3:] if x != "--transcript"]
    while a:
        if a[0] == "--expect-tls":
            want_tls = int(a[1])
        elif a[0] == "--expect-plain":
            want_plain = int(a[1])
        elif a[0] == "--forbid":
            forbid.append(a[1].encode())
        a = a[2:]
    bad = 0
    n_tls = n_plain = 0
    for sid, c in sorted(streams(path, port).items()):
        c2s, s2c = reassemble(c["c2s"]), reassemble(c["s2c"])
        for text in forbid:
            if text in c2s or text in s2c:
                print(f"stream {sid}: FORBIDDEN TEXT {text!r} ON THE WIRE")
                bad += 1
        probe = len(c2s) >= PROBE_LEN and c2s[:4] == b"\x80\x00\x00\x28" and c2s[28:32] == b"\x00\x00\x00\x07"
        starttls = len(s2c) >= STARTTLS_REPLY_LEN and s2c[24:32] == b"STARTTLS"
        if show:
            transcript(sid, c, c2s, s2c, probe and starttls)
        if probe and starttls:
            ok1, at1 = tls_ok(c2s[PROBE_LEN:])
            ok2, at2 = tls_ok(s2c[STARTTLS_REPLY_LEN:])
            first = c2s[PROBE_LEN:PROBE_LEN + 1]
            if ok1 and ok2 and (not first or first == b"\x16"):
                n_tls += 1
                print(f"stream {sid}: tls, {len(c2s) - PROBE_LEN} + {len(s2c) - STARTTLS_REPLY_LEN} "
                      f"bytes of TLS records after the probe and its reply")
            else:
                bad += 1
                where = f"client byte {PROBE_LEN + at1}" if not ok1 else f"server byte {STARTTLS_REPLY_LEN + at2}"
                print(f"stream {sid}: NOT TLS after STARTTLS, at {where}")
        else:
            n_plain += 1
            print(f"stream {sid}: plain, {len(c2s)} + {len(s2c)} bytes"
                  f"{' (probe refused)' if probe else ''}")
    print(f"{n_tls} TLS, {n_plain} plain, {bad} bad")
    if want_tls is not None and n_tls != want_tls:
        print(f"expected {want_tls} TLS connections")
        bad += 1
    if want_plain is not None and n_plain != want_plain:
        print(f"expected {want_plain} plain connections")
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
