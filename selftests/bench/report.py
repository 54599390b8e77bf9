#!/usr/bin/python3
# The table of `make bench`, from the results that selftests/bench/run wrote:
#   report.py RESULTS.tsv OUTDIR
# Writes OUTDIR/results.txt (printed too), results.json, chart.dat, chart.png.
# Every target of the benchmark is a ratio taken in the same run; each line
# says MET or MISSED.
import json
import os
import statistics
import subprocess
import sys

res_path, out = sys.argv[1], sys.argv[2]
R = {}
for line in open(res_path):
    key, _, rest = line.rstrip("\n").partition("\t")
    if key.startswith("meta."):
        R[key] = rest
        continue
    kv = {}
    for f in rest.split():
        k, _, v = f.partition("=")
        try:
            kv[k] = float(v)
        except ValueError:
            kv[k] = v
    R[key] = kv

MODES = ["plain", "rpctls", "app-ktls", "app-ossl", "stunnel"]
NAMES = {"plain": "plain TCP", "rpctls": "rpctls", "app-ktls": "app kTLS", "app-ossl": "app OpenSSL",
         "stunnel": "stunnel"}
cells = sorted({k.split(".")[2] for k in R if k.startswith("tput.large.")}, key=int)
lines, targets, chart = [], [], []
P = lines.append


def target(what, value, op, goal):
    ok = value >= goal if op == ">=" else value <= goal
    targets.append({"what": what, "value": round(value, 3), "target": f"{op} {goal}", "met": ok})
    return f"{value:5.2f}x  (target {op} {goal}: {'MET' if ok else 'MISSED'})"


P(f"rpctls benchmark, {R['meta.date']}, rpctls {R['meta.rev']}")
P(f"kernel {R['meta.kernel']}, {R['meta.cpus']} CPUs ({R['meta.cpu']})"
  + (", emulated (QEMU TCG): only the ratios mean anything" if R["meta.tcg"] == "yes" else ""))
P(f"Each throughput cell: median of {R['meta.rounds']} runs of {R['meta.seconds']} s, interleaved. "
  "CPU: busy time of the whole machine (both hosts, kernel included).")
P("")

if cells:
    # ---- throughput ----
    for shape, title in (("large", "1 MiB calls (WRITE-like), 4 in flight per connection"),
                         ("small", "NULL calls, one at a time per connection")):
        P(title)
        hdr = f"  {'':24}" + "".join(f"{NAMES[m]:>13}" for m in MODES)
        P(hdr)
        for conns in cells:
            row = {m: R[f"tput.{shape}.{conns}.{m}"] for m in MODES}
            size = row["plain"]["size"]
            if shape == "large":
                P(f"  {conns + ' conn MiB/s':24}" + "".join(f"{row[m]['calls_per_s'] * size / 2**20:13.1f}" for m in MODES))
                P(f"  {'   CPU s per GiB':24}" + "".join(f"{row[m]['cpu_s_per_call'] * 2**30 / size:13.2f}" for m in MODES))
            else:
                P(f"  {conns + ' conn calls/s':24}" + "".join(f"{row[m]['calls_per_s']:13.0f}" for m in MODES))
                P(f"  {'   CPU us per call':24}" + "".join(f"{row[m]['cpu_s_per_call'] * 1e6:13.1f}" for m in MODES))
            base = row["plain"]
            chart.append((f"{'1MiB' if shape == 'large' else 'NULL'} x{conns}",
                          [row[m]["calls_per_s"] / base["calls_per_s"] for m in MODES],
                          [row[m]["cpu_s_per_call"] / base["cpu_s_per_call"] for m in MODES]))
        P("")
    P("Throughput and CPU ratios")
    for shape in ("large", "small"):
        for conns in cells:
            row = {m: R[f"tput.{shape}.{conns}.{m}"] for m in MODES}
            label = f"{'1 MiB' if shape == 'large' else 'NULL'}, {conns} conn"
            unit = "GiB" if shape == "large" else "call"
            r = row["rpctls"]
            P(f"  {label:16} rpctls / app kTLS, throughput   "
              + target(f"throughput rpctls/app-ktls {label}", r["calls_per_s"] / row["app-ktls"]["calls_per_s"], ">=", 0.95))
            P(f"  {label:16} rpctls / stunnel, throughput    "
              + target(f"throughput rpctls/stunnel {label}", r["calls_per_s"] / row["stunnel"]["calls_per_s"], ">=", 2.0))
            P(f"  {label:16} rpctls / app kTLS, CPU per {unit:4} "
              + target(f"CPU per {unit} rpctls/app-ktls {label}", r["cpu_s_per_call"] / row["app-ktls"]["cpu_s_per_call"],
                       "<=", 1.05))
    P("")

def med(prefix, field):
    vals = [v[field] for k, v in R.items() if k.startswith(prefix + ".") and field in v]
    return statistics.median(vals) if vals else float("nan")


# ---- handshakes ----
if "ttfr.rpctls" in R:
    t = {m: R[f"ttfr.{m}"] for m in ("rpctls", "rpctls-srv", "tls-noprobe", "plain")}
    P(f"Time from connect() to the first reply, {int(t['rpctls']['n'])} connections one after the other (ms)")
    P(f"  {'':48}{'p50':>9}{'p99':>9}")
    for m, what in (("rpctls", "rpctls at both ends (probe, handshake, hand-over)"),
                    ("rpctls-srv", "rpctls server, client doing RFC 9289 itself"),
                    ("tls-noprobe", "OpenSSL TLS 1.3 connect + one round trip"),
                    ("plain", "plain TCP connect + one round trip")):
        P(f"  {what:48}{t[m]['p50_ms']:9.2f}{t[m]['p99_ms']:9.2f}")
    P("  rpctls / (TLS connect + 1 RTT), p50       "
      + target("time to first reply rpctls/tls p50", t["rpctls"]["p50_ms"] / t["tls-noprobe"]["p50_ms"], "<=", 1.2))
    P("  rpctls / (TLS connect + 1 RTT), p99       "
      + target("time to first reply rpctls/tls p99", t["rpctls"]["p99_ms"] / t["tls-noprobe"]["p99_ms"], "<=", 1.2))
    P("")
if any(k.startswith("hs.") for k in R):
    hs = {m: {f: med(f"hs.{m}", f) for f in ("rate", "p50_ms", "p99_ms", "bpf_ns_per_conn", "ctl_ms_per_conn")}
          for m in ("rpctls-srv", "app-ossl")}
    P("Handshakes per second, 8 clients at once, each: connect, probe, TLS 1.3, one call, close (median of rounds)")
    P(f"  {'':48}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    P(f"  {'rpctls controller (server role)':48}{hs['rpctls-srv']['rate']:9.1f}"
      f"{hs['rpctls-srv']['p50_ms']:9.2f}{hs['rpctls-srv']['p99_ms']:9.2f}")
    P(f"  {'OpenSSL in the server itself':48}{hs['app-ossl']['rate']:9.1f}"
      f"{hs['app-ossl']['p50_ms']:9.2f}{hs['app-ossl']['p99_ms']:9.2f}")
    P("  rpctls / OpenSSL, handshakes per second   "
      + target("handshakes per second rpctls/openssl", hs["rpctls-srv"]["rate"] / hs["app-ossl"]["rate"], ">=", 0.9))
    P(f"  the BPF phase per connection: {hs['rpctls-srv']['bpf_ns_per_conn'] / 1000:.1f} us in BPF programs, "
      f"{hs['rpctls-srv']['ctl_ms_per_conn']:.2f} ms of controller CPU")
    fails = {m: sum(v.get("failed", 0) for k, v in R.items() if k.startswith(f"hs.{m}.")) for m in hs}
    P(f"  connections that failed over all rounds: rpctls {fails['rpctls-srv']:.0f}, OpenSSL {fails['app-ossl']:.0f}")
if "storm" in R:
    s = R["storm"]
    P(f"  storm: {int(s['n'])} of {int(s['clients'])} clients at once served ({s.get('failed', 0):.0f} failed) in {s['secs']:.1f} s "
      f"({s['n'] / s['secs']:.1f}/s), p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms; "
      f"controller peak memory {s['ctl_peak_kb'] / 1024:.1f} MiB")
    P("")

# ---- BPF ----
if any(k.startswith("bpf.") for k in R):
    P("BPF programs over the whole run (kernel.bpf_stats_enabled)")
    P(f"  {'program':16}{'runs':>12}{'total ms':>12}{'ns per run':>12}")
    for k in sorted(k for k in R if k.startswith("bpf.")):
        v = R[k]
        n = v["run_cnt"]
        P(f"  {k[4:]:16}{n:12.0f}{v['run_time_ns'] / 1e6:12.1f}{(v['run_time_ns'] / n if n else 0):12.0f}")
    P("")

# ---- memory ----
if "mem.plain" in R:
    P("Memory per idle connection, both ends on this machine (bytes)")
    for m, what in (("plain", "plain TCP"), ("app-ktls", "app kTLS"), ("rpctls", "rpctls (kTLS at both ends)")):
        if f"mem.{m}" not in R:
            continue
        v = R[f"mem.{m}"]
        extra = f", controller {v['ctl_bytes_per_conn']:.0f}" if m == "rpctls" else ""
        P(f"  {what:28} kernel {v['kernel_bytes_per_conn']:8.0f}{extra}  ({int(v['n'])} connections)")
    P("")
missed = [x for x in targets if not x["met"]]
P(f"Targets: {len(targets) - len(missed)} of {len(targets)} met"
  + ("" if not missed else "; missed: " + "; ".join(x["what"] for x in missed)))

text = "\n".join(lines) + "\n"
sys.stdout.write(text)
with open(os.path.join(out, "results.txt"), "w") as f:
    f.write(text)
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"results": R, "targets": targets}, f, indent=1)

# ---- chart: throughput and CPU per call, relative to plain TCP ----
if chart:
    with open(os.path.join(out, "chart.dat"), "w") as f:
        f.write("cell " + " ".join(f'"{NAMES[m]}"' for m in MODES) + "\n")
        for label, rates, _ in chart:
            f.write(f'"{label}" ' + " ".join(f"{x:.4f}" for x in rates) + "\n")
    with open(os.path.join(out, "chart-cpu.dat"), "w") as f:
        f.write("cell " + " ".join(f'"{NAMES[m]}"' for m in MODES) + "\n")
        for label, _, cpus in chart:
            f.write(f'"{label}" ' + " ".join(f"{x:.4f}" for x in cpus) + "\n")
    gp = f"""
    set terminal pngcairo size 1100,800 font ",10"
    set output "{out}/chart.png"
    set multiplot layout 2,1 title "rpctls benchmark, {R['meta.date']}, kernel {R['meta.kernel']} (ratios to plain TCP)"
    set style data histograms
    set style histogram clustered gap 1
    set style fill solid 0.8 border -1
    set key outside right top
    set grid ytics
    set yrange [0:*]
    set ylabel "throughput / plain TCP"
    plot for [i=2:{len(MODES) + 1}] "{out}/chart.dat" using i:xtic(1) title columnheader(i)
    set ylabel "CPU per call / plain TCP"
    plot for [i=2:{len(MODES) + 1}] "{out}/chart-cpu.dat" using i:xtic(1) title columnheader(i)
    unset multiplot
    """
    try:
        subprocess.run(["gnuplot"], input=gp, text=True, check=True, capture_output=True)
        print(f"bench: table in {out}/results.txt, chart in {out}/chart.png")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench: no chart: {getattr(e, 'stderr', e)}", file=sys.stderr)
