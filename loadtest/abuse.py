#!/usr/bin/env python3
"""The users API's abuse limits under load (issue #17's measurements).

bareapi runs with one worker on core 0 (--trusted-proxies 127.0.0.1, so the flood's
X-Forwarded-For names its client); the load generators run on core 1. Three parts:

  1. A flood of wrong-password logins from many addresses: loadtest/wrk/login_flood.lua, every
     login from a new address and for a new email, as fast as one wrk connection set on the load
     core sends them, while wrk measures /db and GET /api/users/{id} (64 connections, as in
     run.py). In alternating rounds: each round measures both routes quiet and under the flood,
     each on a fresh server process, the order swapped every round; the report gives medians and
     the medians of the per-round ratios (flood / quiet) of req/s and p99.
  2. Cancelled logins (refusals answered at once, --refusal-delay-ms 0, here and in part 3): clients that send a login and close the socket a few milliseconds later,
     from many threads; /metrics is polled for the hashes running (never above the permits) and
     the server's peak RSS is read before and after.
  3. A million distinct emails and addresses: the flood script stopped after 1 000 000 answers;
     the server's RSS and peak RSS after 100 000 and after 1 000 000 (bounded: the limiters keep
     --rate-limit-keys entries each).

  loadtest/abuse.py                 # 3 rounds of 5 s, then parts 2 and 3 (about 6 minutes)
  loadtest/abuse.py --rounds 1 --duration 1 --distinct 20000 --cancelled 500   # a quick check

Results go to loadtest/results/<timestamp>-abuse/ (results.json, results.md). Only 127.0.0.1 is
targeted; every run is bounded in time or count.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as suite  # noqa: E402  (the suite's Database, Server, wrk and helpers)

FLOOD_SCRIPT = os.path.join(suite.ROOT, "loadtest", "wrk", "login_flood.lua")
FLOOD_CONNECTIONS = 128


def serve_argv(*extra):
    return [f"{suite.RELEASE}/bareapi", "serve", "--listen", "127.0.0.1:0", "--no-migrate", "--workers", "1",
            "--trusted-proxies", "127.0.0.1/32", *extra]


# Parts 2 and 3 answer refusals at once: they measure memory, and held refusals would only
# make them take longer.
NO_HOLD = ("--refusal-delay-ms", "0")


def metrics(addr):
    """The server's /metrics as {name{labels}: value}."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as res:
        text = res.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def rss_kib(server):
    fields = {}
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                fields[k] = int(v.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def flood(addr, core, seconds=None, limit=0, series=0, connections=FLOOD_CONNECTIONS):
    """Starts the login flood; returns the process (its FLOODJSON line comes at the end)."""
    cmd = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", "--timeout", "10s",
           f"-d{seconds or 600}s", "-s", FLOOD_SCRIPT, f"http://{addr}/api/sessions"]
    cmd += ["--", str(limit), str(series)]
    marker = None
    if limit:
        # wrk waits out -d even after its thread stops: told by the script's marker file, the
        # count is reached and wrk gets SIGINT, on which it prints its summary.
        fd, marker = tempfile.mkstemp(prefix="bareapi-flood.")
        os.close(fd)
        os.unlink(marker)
        cmd.append(marker)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.marker = marker
    return proc


def flood_result(proc):
    if proc.marker:
        deadline = time.time() + 900
        while not os.path.exists(proc.marker) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        if os.path.exists(proc.marker):
            os.unlink(proc.marker)
    out, _ = proc.communicate(timeout=900)
    line = next((l for l in out.splitlines() if l.startswith("FLOODJSON ")), None)
    if line is None:
        raise RuntimeError(f"the flood printed no summary:\n{out}")
    r = json.loads(line[len("FLOODJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0
    return r


def flood_vs_quiet(args, db_url, routes):
    rows = []
    for rnd in range(args.rounds):
        modes = ["quiet", "flood"] if rnd % 2 == 0 else ["flood", "quiet"]
        suite.log(f"round {rnd + 1} of {args.rounds}")
        for mode in modes:
            for label, path, headers in routes:
                server = suite.Server(f"bareapi ({mode})", serve_argv(), db_url, args.server_core)
                try:
                    proc = None
                    if mode == "flood":
                        proc = flood(server.addr, args.load_core, seconds=args.warmup + args.duration + 2)
                        time.sleep(1)
                    before = metrics(server.addr)
                    r = suite.measure(server, path, args, rnd + 1, headers=headers, label=label)
                    after = metrics(server.addr)
                    r["mode"] = mode
                    r["hashes_started"] = (after.get("bareapi_password_hashes_total", 0)
                                           - before.get("bareapi_password_hashes_total", 0))
                    r["throttled"] = {k.split('"')[1]: after[k] - before.get(k, 0) for k in after
                                      if k.startswith("bareapi_throttled_requests_total")}
                    if proc:
                        r["flood"] = flood_result(proc)
                        f = r["flood"]
                        suite.log(f"   flood: {f['rps']:.0f} logins/s, answers {f['statuses']}, "
                                  f"hashes {r['hashes_started']:.0f}, throttled {r['throttled']}")
                    rows.append(r)
                finally:
                    server.stop()
    return rows


def cancel_logins(addr, count, threads, hold_s):
    """`count` logins from `threads` threads, each closed `hold_s` after it is sent."""
    host, port = addr.rsplit(":", 1)
    sent = [0]
    lock = threading.Lock()

    def worker(t):
        i = 0
        while True:
            with lock:
                if sent[0] >= count:
                    return
                sent[0] += 1
                n = sent[0]
            i += 1
            body = json.dumps({"email": f"cancel-{t}-{i}@example.com", "password": "not the password"}).encode()
            req = (f"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"X-Forwarded-For: 10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            try:
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(req)
                time.sleep(hold_s)
                s.close()
            except OSError:
                pass

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    return ts


def cancelled(args, db_url):
    server = suite.Server("bareapi", serve_argv(*NO_HOLD), db_url, args.server_core)
    try:
        permits = metrics(server.addr).get("bareapi_password_hash_permits")
        rss0, hwm0 = rss_kib(server)
        started = time.time()
        ts = cancel_logins(server.addr, args.cancelled, 16, 0.005)
        peak_running, samples = 0, 0
        while any(t.is_alive() for t in ts):
            m = metrics(server.addr)
            peak_running = max(peak_running, m.get("bareapi_password_hashes_running", 0))
            samples += 1
            time.sleep(0.02)
        elapsed = time.time() - started
        # Let the queue drain.
        for _ in range(600):
            m = metrics(server.addr)
            peak_running = max(peak_running, m.get("bareapi_password_hashes_running", 0))
            if not m.get("bareapi_password_hashes_running") and not m.get("bareapi_password_hash_queue_depth"):
                break
            time.sleep(0.05)
        m = metrics(server.addr)
        rss1, hwm1 = rss_kib(server)
        r = {"logins": args.cancelled, "seconds": elapsed, "permits": permits, "peak_hashes_running": peak_running,
             "samples": samples, "hashes_started": m.get("bareapi_password_hashes_total"),
             "refused_queue_full": m.get('bareapi_throttled_requests_total{reason="hash_queue_full"}'),
             "rss_kib_before": rss0, "peak_rss_kib_before": hwm0, "rss_kib_after": rss1, "peak_rss_kib_after": hwm1}
        suite.log(f"cancelled logins: {r}")
        return r
    finally:
        server.stop()


def distinct(args, db_url):
    server = suite.Server("bareapi", serve_argv(*NO_HOLD), db_url, args.server_core)
    try:
        out = []
        rss0, hwm0 = rss_kib(server)
        out.append({"answers": 0, "rss_kib": rss0, "peak_rss_kib": hwm0})
        step = max(args.distinct // 10, 1)
        # Two legs, so the first tenth's RSS is on record; the second leg's keys are a new series.
        for series, limit in ((0, step), (1, args.distinct - step)):
            proc = flood(server.addr, args.load_core, limit=limit, series=series)
            f = flood_result(proc)
            rss, hwm = rss_kib(server)
            done = out[-1]["answers"] + f["requests"]
            out.append({"answers": done, "rss_kib": rss, "peak_rss_kib": hwm, "statuses": f["statuses"],
                        "rps": f["rps"]})
            suite.log(f"distinct keys: after {done} logins RSS {rss} KiB, peak {hwm} KiB ({f['statuses']})")
        return out
    finally:
        server.stop()


def ratios(rows, route, key):
    per_round = {}
    for r in rows:
        if r["route"] == route:
            per_round.setdefault(r["round"], {})[r["mode"]] = r[key]
    vals = [v["flood"] / v["quiet"] for v in per_round.values() if v.get("flood") and v.get("quiet")]
    return suite.median(vals), (min(vals) if vals else None), (max(vals) if vals else None)


def report(meta, rows, cancel, keys):
    lines = [f"# Abuse limits under load ({meta['started']})", "",
             f"`{meta['command']}` on {meta['machine']}; bareapi one worker on core {meta['server_core']}, "
             f"load on core {meta['load_core']}; {meta['rounds']} rounds of {meta['duration_s']} s.", "",
             "| route | quiet req/s | flood req/s | flood/quiet req/s (min..max) | quiet p99 ms | flood p99 ms | "
             "flood/quiet p99 (min..max) | flood logins/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for route in dict.fromkeys(r["route"] for r in rows):
        q = [r for r in rows if r["route"] == route and r["mode"] == "quiet"]
        f = [r for r in rows if r["route"] == route and r["mode"] == "flood"]
        rr, rlo, rhi = ratios(rows, route, "rps")
        pr, plo, phi = ratios(rows, route, "p99_ms")
        lines.append(f"| {route} | {suite.median(r['rps'] for r in q):.0f} | {suite.median(r['rps'] for r in f):.0f} | "
                     f"{rr:.2f}× ({rlo:.2f}..{rhi:.2f}) | {suite.median(r['p99_ms'] for r in q):.2f} | "
                     f"{suite.median(r['p99_ms'] for r in f):.2f} | {pr:.2f}× ({plo:.2f}..{phi:.2f}) | "
                     f"{suite.median(r['flood']['rps'] for r in f):.0f} |")
    lines += ["", f"Cancelled logins: {json.dumps(cancel)}", "", f"Distinct keys: {json.dumps(keys)}", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument("--cancelled", type=int, default=20000, help="cancelled logins in part 2")
    p.add_argument("--distinct", type=int, default=1_000_000, help="distinct emails and addresses in part 3")
    p.add_argument("--parts", default="1,2,3", help="which parts to run (comma-separated)")
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out = os.path.join(suite.ROOT, "loadtest", "results", started + "-abuse")
    os.makedirs(args.out, exist_ok=True)
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: loadtest/run.py installs it (apt-get install wrk)")
    if not args.no_build:
        suite.run(["cargo", "build", "--release", "--quiet", "-p", "bareapi"], cwd=suite.ROOT)
    db = suite.Database()
    try:
        suite.run([f"{suite.RELEASE}/bareapi", "migrate"], env=dict(os.environ, DATABASE_URL=db.url),
                  stdout=subprocess.DEVNULL)
        seed = suite.Server("seed", serve_argv(), db.url, args.server_core)
        ids, token = suite.make_users(seed.addr)
        seed.stop()
        routes = [("/db", "/db", []), ("/api/users/{id}", f"/api/users/{ids[0]}", [f"Authorization: Bearer {token}"])]
        rows = flood_vs_quiet(args, db.url, routes) if "1" in parts else []
        cancel = cancelled(args, db.url) if "2" in parts else None
        keys = distinct(args, db.url) if "3" in parts else None
    finally:
        db.close()
    meta = {"started": started, "command": " ".join(["loadtest/abuse.py"] + sys.argv[1:]),
            "machine": suite.machine_description(), "server_core": args.server_core, "load_core": args.load_core,
            "rounds": args.rounds, "duration_s": args.duration}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "flood": rows, "cancelled": cancel, "distinct": keys}, f, indent=1)
    md = report(meta, rows, cancel, keys)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    bad = [r for r in rows if r["errors"] or r["non_2xx"]]
    for r in bad:
        suite.log(f"FAILED: {r['route']} ({r['mode']}, round {r['round']}): {r['errors']} errors, {r['non_2xx']} non-2xx")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
