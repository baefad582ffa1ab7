#!/usr/bin/env python3
"""The bareapi load-test suite.

One command builds everything in release, brings up a throwaway PostgreSQL (unless DATABASE_URL
is set), and measures, one server at a time pinned to core 0 with the load generator on core 1:

  - bareapi in per-core mode and in multi-thread mode,
  - hyper-bare, the floor (loadtest/reference/hyper-bare): the benchmark routes on bare hyper
    with per-core runtimes and three shared connections per worker, as bareapi, but with none
    of bareapi's production layer (router, metrics, request ids, timeouts, limits, ...),
  - the axum and actix-web reference servers (loadtest/reference/), written the way a team
    would write them with those frameworks, over the same database, SQL and allocator,
  - the ceiling responder (no HTTP parsing, canned answers: the machine's limit),

over every route of the benchmark suite, the users API reads (not hyper-bare and ceiling), and
/plaintext pipelined 16 deep, with wrk (closed loop, fixed connections, warm-up, fixed
duration); then oha at fixed request rates (open loop, latency-corrected) at 50% and 90% of the
axum reference's median maximum.

The closed-loop part runs in alternating rounds (--rounds, default 3): each round starts every
server once, measures all its routes and stops it, and each round starts at the next server
(round r at server r mod count), so this VM's drift over minutes falls on every server alike.
Reports give per (server, route) the median over rounds and the spread (min..max of req/s);
ratios between servers are medians of the per-round ratios.

Each run records requests/s, p50/p90/p99/p99.9 latency, errors and non-2xx answers, server CPU
time per request (utime+stime of the server process around the run, divided by the requests
completed) and the server's peak RSS. Results go to loadtest/results/<timestamp>/ as
results.json (every round's rows and the medians), results.md (tables and ratios) and
chart.svg (medians). Any error or non-2xx answer in any round fails the run (exit status 1).

  loadtest/run.py              # the full run (about 15-20 minutes)
  loadtest/run.py --smoke      # 1 s per run, one round: checks that the suite works (CI runs this)

Only 127.0.0.1 is targeted; every run is bounded in time and stops by itself.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")

BENCH_ROUTES = [
    "/plaintext",
    "/json",
    "/db",
    "/queries?queries=20",
    "/fortunes",
    "/updates?queries=20",
    "/cached-queries?count=20",
]
PIPELINE_DEPTH = 16


def log(msg):
    print(f"[loadtest] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_tools():
    if shutil.which("wrk") is None:
        if os.geteuid() != 0:
            sys.exit("wrk not found: install it (apt-get install wrk)")
        log("installing wrk (apt-get install wrk)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, stdout=subprocess.DEVNULL)
    if shutil.which("oha") is None:
        log("installing oha (cargo install oha --locked)")
        run(["cargo", "install", "oha", "--locked", "--quiet"])
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (util-linux)")


def build():
    log("building in release: bareapi, hyper-bare, axum-ref, actix-ref, ceiling")
    run(["cargo", "build", "--release", "--quiet", "-p", "bareapi", "-p", "hyper-bare", "-p", "axum-ref",
         "-p", "actix-ref", "-p", "ceiling"], cwd=ROOT)


class Database:
    """DATABASE_URL, or a throwaway cluster started with scripts/pg.sh."""

    def __init__(self):
        self.dir = None
        self.url = os.environ.get("DATABASE_URL")
        if self.url:
            return
        self.dir = tempfile.mkdtemp(prefix="bareapi-loadtest-pg.")
        port = run(["bash", "scripts/pg.sh", "free-port"], cwd=ROOT, capture_output=True).stdout.strip()
        self.url = run(["bash", "scripts/pg.sh", "start", self.dir, port], cwd=ROOT, capture_output=True).stdout.strip()
        log(f"throwaway PostgreSQL at {self.url}")

    def close(self):
        if self.dir:
            subprocess.run(["bash", "scripts/pg.sh", "stop", self.dir], cwd=ROOT)
            shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """A server process pinned to one core, found ready by its `listening addr=` line."""

    def __init__(self, name, argv, db_url, core):
        self.name = name
        env = dict(os.environ, DATABASE_URL=db_url)
        self.log_file = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(["taskset", "-c", str(core)] + argv, env=env, stdout=subprocess.PIPE,
                                     stderr=self.log_file, text=True)
        deadline = time.time() + 60
        self.addr = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "listening addr=" in line:
                self.addr = line.split("listening addr=")[1].split()[0]
                break
        if not self.addr:
            self.stop()
            self.log_file.seek(0)
            sys.exit(f"{name} did not start:\n{self.log_file.read()[-2000:]}")
        # Keep draining stdout so a chatty server never blocks on a full pipe.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the whole line; here counted after "(comm)".
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


WRK_SCRIPT = """
local depth = %d
if depth > 1 then
  init = function(args)
    local batch = {}
    for i = 1, depth do batch[i] = wrk.format() end
    req = table.concat(batch)
  end
  request = function() return req end
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,'
    .. '"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def wrk(url, seconds, connections, core, headers, depth, script_dir):
    script = os.path.join(script_dir, f"wrk-depth{depth}.lua")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(WRK_SCRIPT % depth)
    cmd = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script]
    for h in headers:
        cmd += ["-H", h]
    out = run(cmd + [url], capture_output=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    return json.loads(line[len("WRKJSON "):])


def measure(server, route, args, round_no, headers=(), depth=1, label=None):
    url = f"http://{server.addr}{route}"
    wrk(url, args.warmup, args.connections, args.load_core, headers, depth, args.out)
    cpu0 = server.cpu_seconds()
    r = wrk(url, args.duration, args.connections, args.load_core, headers, depth, args.out)
    cpu = server.cpu_seconds() - cpu0
    seconds = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    result = {
        "server": server.name,
        "route": label or (route if depth == 1 else f"{route} (pipelined {depth})"),
        "round": round_no,
        "requests": r["requests"],
        "rps": r["requests"] / seconds if seconds else 0,
        "p50_ms": r["p50"] / 1000,
        "p90_ms": r["p90"] / 1000,
        "p99_ms": r["p99"] / 1000,
        "p999_ms": r["p999"] / 1000,
        "errors": errors,
        "non_2xx": r["status"],
        "cpu_us_per_request": (cpu * 1e6 / r["requests"]) if r["requests"] else None,
    }
    log(f"r{round_no} {server.name:14} {result['route']:34} {result['rps']:>10.0f} req/s  p99 {result['p99_ms']:.3f} ms  "
        f"cpu/req {result['cpu_us_per_request'] or 0:.2f} us  errors {errors} non-2xx {r['status']}")
    return result


def oha_fixed_rate(server, route, rate, args, headers=()):
    cmd = ["taskset", "-c", str(args.load_core), "oha", "--no-tui", "--output-format", "json", "-z",
           f"{args.fixed_duration}s", "-c", str(args.connections), "-q", str(int(rate)), "--latency-correction"]
    for h in headers:
        cmd += ["-H", h]
    out = json.loads(run(cmd + [f"http://{server.addr}{route}"], capture_output=True).stdout)
    p = out["latencyPercentiles"]
    codes = out.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    result = {
        "server": server.name,
        "route": route,
        "rate": int(rate),
        "achieved_rps": out["summary"]["requestsPerSec"],
        "p50_ms": p["p50"] * 1000,
        "p99_ms": p["p99"] * 1000,
        "p999_ms": p["p99.9"] * 1000,
        "non_2xx": sum(codes.values()) - ok,
        # Requests still in flight when the run's time is up are cut off by oha itself, not
        # failed by the server.
        "errors": sum(v for k, v in out.get("errorDistribution", {}).items() if "deadline" not in k),
    }
    log(f"{server.name:14} {route:20} at {int(rate):>7}/s  p99 {result['p99_ms']:.3f} ms  p99.9 {result['p999_ms']:.3f} ms")
    return result


def http_json(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read())


def make_users(addr):
    """Twenty users (so a batch of 20 is well over the 1 KiB gzip threshold) and a token."""
    stamp = time.time_ns()
    ids = []
    for i in range(20):
        u = http_json("POST", f"http://{addr}/api/users",
                      {"email": f"load-{stamp}-{i}@example.com", "password": "load test password",
                       "name": f"Load Test User Number {i}"})
        ids.append(u["id"])
    token = http_json("POST", f"http://{addr}/api/sessions",
                      {"email": f"load-{stamp}-0@example.com", "password": "load test password"})["token"]
    return ids, token


def servers_to_run(args, db_url):
    w = ["--workers", "1"]
    specs = {
        "ceiling": [f"{RELEASE}/ceiling", "--listen", "127.0.0.1:0"] + w,
        "hyper-bare": [f"{RELEASE}/hyper-bare", "--listen", "127.0.0.1:0"] + w,
        "bareapi": [f"{RELEASE}/bareapi", "serve", "--listen", "127.0.0.1:0", "--no-migrate"] + w,
        "bareapi-mt": [f"{RELEASE}/bareapi", "serve", "--listen", "127.0.0.1:0", "--no-migrate",
                       "--runtime", "multi-thread"] + w,
        "axum": [f"{RELEASE}/axum-ref", "--listen", "127.0.0.1:0"] + w,
        "actix": [f"{RELEASE}/actix-ref", "--listen", "127.0.0.1:0"] + w,
    }
    return [(name, specs[name]) for name in args.servers]


def machine_description():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores{', ' + model if model else ''}"


def ratio(a, b):
    return a / b if a and b else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(closed, servers, routes):
    """Per (server, route): medians over the rounds, the spread of req/s, errors summed."""
    rows = {}
    for r in closed:
        rows.setdefault((r["server"], r["route"]), []).append(r)
    summary = []
    for s in servers:
        for route in routes:
            rs = rows.get((s, route))
            if not rs:
                continue
            rps = [r["rps"] for r in rs]
            summary.append({
                "server": s,
                "route": route,
                "rounds": len(rs),
                "rps": median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "p50_ms": median(r["p50_ms"] for r in rs),
                "p90_ms": median(r["p90_ms"] for r in rs),
                "p99_ms": median(r["p99_ms"] for r in rs),
                "p999_ms": median(r["p999_ms"] for r in rs),
                "cpu_us_per_request": median(r["cpu_us_per_request"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "non_2xx": sum(r["non_2xx"] for r in rs),
            })
    return summary


def per_round_ratios(closed, route, a, b, key):
    """a's `key` over b's on `route`, one value per round in which both were measured."""
    by = {(r["server"], r["round"]): r for r in closed if r["route"] == route}
    out = []
    for rnd in sorted({r["round"] for r in closed}):
        ra, rb = by.get((a, rnd)), by.get((b, rnd))
        x = ratio(ra[key], rb[key]) if ra and rb else None
        if x is not None:
            out.append(x)
    return out


RATIO_AGAINST = ["hyper-bare", "axum", "actix", "ceiling", "bareapi-mt"]
CPU_RATIO_AGAINST = ["hyper-bare", "axum", "ceiling"]


def ratio_table(closed, routes):
    """bareapi per-core against each other server, per route: medians of per-round ratios."""
    out = []
    for route in routes:
        for other in RATIO_AGAINST:
            rps = per_round_ratios(closed, route, "bareapi", other, "rps")
            cpu = per_round_ratios(closed, route, "bareapi", other, "cpu_us_per_request")
            if not rps and not cpu:
                continue
            out.append({
                "route": route, "server": "bareapi", "against": other, "rounds": len(rps),
                "rps_ratio": median(rps), "rps_ratio_min": min(rps, default=None),
                "rps_ratio_max": max(rps, default=None),
                "cpu_ratio": median(cpu), "cpu_ratio_min": min(cpu, default=None),
                "cpu_ratio_max": max(cpu, default=None),
            })
    return out


def write_reports(out_dir, meta, closed, fixed, rss_rounds):
    seen = list(dict.fromkeys(r["server"] for r in closed))
    servers = [s for s in meta["servers"] if s in seen] + [s for s in seen if s not in meta["servers"]]
    # Routes in the order they were measured on the server that has the most of them.
    routes = max((list(dict.fromkeys(r["route"] for r in closed if r["server"] == s)) for s in servers), key=len,
                 default=[])
    routes += [r for r in dict.fromkeys(r["route"] for r in closed) if r not in routes]
    summary = summarize(closed, servers, routes)
    by = {(r["server"], r["route"]): r for r in summary}
    ratios = ratio_table(closed, routes)
    rat = {(r["route"], r["against"]): r for r in ratios}
    rss = {}
    for r in rss_rounds:
        if r["peak_rss_kib"] is not None:
            rss[r["server"]] = max(rss.get(r["server"], 0), r["peak_rss_kib"])
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "closed_loop": closed, "closed_loop_summary": summary, "ratios": ratios,
                   "fixed_rate": fixed, "peak_rss_kib": rss, "peak_rss_kib_by_round": rss_rounds}, f, indent=2)

    def fmt(x):
        return f"{x:.2f}×" if x else "-"

    def spread(lo, hi):
        return f"{fmt(lo)}..{fmt(hi)}" if lo and hi else "-"

    rounds = meta["rounds"]
    md = [f"# Load test {meta['started']}", "", f"Command: `{meta['command']}`", "",
          f"Machine: {meta['machine']}. Server on core {meta['server_core']}, load generator on core "
          f"{meta['load_core']}; {meta['connections']} connections, {meta['duration_s']} s per run after "
          f"{meta['warmup_s']} s of warm-up, in {rounds} round{'s' if rounds != 1 else ''}: each round starts every "
          "server once and measures all its routes, the order of servers rotated by one each round. Every figure "
          "below is the median over the rounds; ratios are medians of the per-round ratios. Every round's rows are "
          "in results.json.", "",
          "## Closed loop (wrk)", "",
          "| server | route | requests/s | spread (min..max) | p50 ms | p90 ms | p99 ms | p99.9 ms | CPU µs/req | "
          "errors | non-2xx |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary:
        cpu = f"{r['cpu_us_per_request']:.2f}" if r["cpu_us_per_request"] is not None else "-"
        rng = (f"{r['rps_min']:.0f}..{r['rps_max']:.0f} ({round((r['rps_min'] / r['rps'] - 1) * 100):+d}%.."
               f"{round((r['rps_max'] / r['rps'] - 1) * 100):+d}%)") if r["rps"] else "-"
        if "pipelined" in r["route"]:
            # wrk times a pipelined batch by its first answer; the tail percentiles are not real.
            md.append(f"| {r['server']} | {r['route']} | {r['rps']:.0f} | {rng} | {r['p50_ms']:.3f} | - | - | - | "
                      f"{cpu} | {r['errors']} | {r['non_2xx']} |")
            continue
        md.append(f"| {r['server']} | {r['route']} | {r['rps']:.0f} | {rng} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                  f"{r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {cpu} | {r['errors']} | {r['non_2xx']} |")

    md += ["", "## Ratios (bareapi per-core against the others, medians of per-round ratios)", "",
           "| route | " + " | ".join(f"vs {o} req/s" for o in RATIO_AGAINST) + " | "
           + " | ".join(f"CPU/req vs {o}" for o in CPU_RATIO_AGAINST) + " |",
           "|---|" + "---:|" * (len(RATIO_AGAINST) + len(CPU_RATIO_AGAINST))]
    for route in routes:
        if ("bareapi", route) not in by:
            continue
        cells = [fmt(rat[(route, o)]["rps_ratio"]) if (route, o) in rat else "-" for o in RATIO_AGAINST]
        cells += [fmt(rat[(route, o)]["cpu_ratio"]) if (route, o) in rat else "-" for o in CPU_RATIO_AGAINST]
        md.append(f"| {route} | " + " | ".join(cells) + " |")

    floor = [route for route in routes if (route, "hyper-bare") in rat]
    if floor:
        md += ["", "## What bareapi's production layer costs over bare hyper", "",
               "bareapi per-core against hyper-bare, the same benchmark routes on bare hyper with the same runtime "
               "layout and database sharing but none of bareapi's production layer (router, metrics, request ids, "
               "timeouts, limits, panic isolation, graceful shutdown, ...). A req/s ratio below 1× and a CPU/request "
               "ratio above 1× are that layer's cost. Medians of the per-round ratios, with their range over the "
               "rounds.", "",
               "| route | req/s bareapi / hyper-bare | range | CPU/req bareapi / hyper-bare | range |",
               "|---|---:|---:|---:|---:|"]
        for route in floor:
            x = rat[(route, "hyper-bare")]
            md.append(f"| {route} | {fmt(x['rps_ratio'])} | {spread(x['rps_ratio_min'], x['rps_ratio_max'])} | "
                      f"{fmt(x['cpu_ratio'])} | {spread(x['cpu_ratio_min'], x['cpu_ratio_max'])} |")
    if fixed:
        md += ["", "## Fixed rate (oha, open loop, latency-corrected; one pass, rates from axum's median maximum)", "",
               "| server | route | target rate | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors + non-2xx |",
               "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in fixed:
            md.append(f"| {r['server']} | {r['route']} | {r['rate']} | {r['achieved_rps']:.0f} | {r['p50_ms']:.3f} | "
                      f"{r['p99_ms']:.3f} | {r['p999_ms']:.3f} | {r['errors'] + r['non_2xx']} |")
    md += ["", "## Peak RSS (the highest over the rounds)", "", "| server | peak RSS (MiB) |", "|---|---:|"]
    for s in servers:
        if rss.get(s):
            md.append(f"| {s} | {rss[s] / 1024:.1f} |")
    md += ["", "![requests per second](chart.svg)", ""]
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(out_dir, "chart.svg"), "w") as f:
        f.write(svg_chart(servers, routes, by))
    return "\n".join(md)


COLORS = {"bareapi": "#1f77b4", "bareapi-mt": "#aec7e8", "hyper-bare": "#9467bd", "axum": "#d62728", "actix": "#2ca02c",
          "ceiling": "#7f7f7f"}


def svg_chart(servers, routes, by):
    """Horizontal grouped bars: median requests/s per route, one bar per server, scaled per route."""
    bar_h, gap, label_w, plot_w = 14, 18, 250, 560
    height = 40 + len(routes) * (len(servers) * bar_h + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 160}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<text x="10" y="20" font-size="14" font-weight="bold">Requests per second, median over the rounds '
           '(each route scaled to its fastest server)</text>']
    y = 40
    for route in routes:
        vals = [by[(s, route)]["rps"] for s in servers if (s, route) in by]
        top = max(vals) if vals else 1
        out.append(f'<text x="10" y="{y + bar_h}" >{route.replace("&", "&amp;").replace("<", "&lt;")}</text>')
        for s in servers:
            r = by.get((s, route))
            if r:
                w = max(1, plot_w * r["rps"] / top)
                out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{COLORS.get(s, "#999")}"/>')
                out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}">{s} {r["rps"]:,.0f}</text>')
            y += bar_h
        y += gap
    out.append("</svg>")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="1 s per run, to check that the suite works")
    p.add_argument("--rounds", type=int, default=3, help="closed-loop rounds (each server once per round)")
    p.add_argument("--duration", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--fixed-duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--load-core", type=int, default=1)
    p.add_argument("--servers", default="ceiling,hyper-bare,bareapi,bareapi-mt,axum,actix")
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args()
    if args.smoke:
        args.duration, args.warmup, args.fixed_duration, args.rounds = 1, 1, 1, 1
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    args.servers = [s for s in args.servers.split(",") if s]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out = os.path.join(ROOT, "loadtest", "results", started + ("-smoke" if args.smoke else ""))
    os.makedirs(args.out, exist_ok=True)

    ensure_tools()
    if not args.no_build:
        build()
    db = Database()
    closed, fixed, rss = [], [], []
    try:
        run([f"{RELEASE}/bareapi", "migrate"], env=dict(os.environ, DATABASE_URL=db.url), stdout=subprocess.DEVNULL)
        seed = Server("seed", [f"{RELEASE}/bareapi", "serve", "--listen", "127.0.0.1:0", "--no-migrate"], db.url,
                      args.server_core)
        ids, token = make_users(seed.addr)
        seed.stop()
        auth = f"Authorization: Bearer {token}"
        batch = f"/api/users?ids={','.join(map(str, ids))}"
        # (label, path, headers)
        user_routes = [("/api/users/{id}", f"/api/users/{ids[0]}", [auth]),
                       ("/api/users?ids= (20 ids)", batch, [auth]),
                       ("/api/users?ids= (20 ids, gzip)", batch, [auth, "Accept-Encoding: gzip"])]
        specs = servers_to_run(args, db.url)
        max_rps = {}
        # Closed loop in rounds: every server once per round, round r starting at server r mod count.
        for rnd in range(args.rounds):
            first = rnd % len(specs)
            log(f"round {rnd + 1} of {args.rounds}")
            for name, argv in specs[first:] + specs[:first]:
                server = Server(name, argv, db.url, args.server_core)
                try:
                    routes = ["/plaintext", "/json"] if name == "ceiling" else BENCH_ROUTES
                    for route in routes:
                        r = measure(server, route, args, rnd + 1)
                        closed.append(r)
                        max_rps.setdefault((name, route), []).append(r["rps"])
                    closed.append(measure(server, "/plaintext", args, rnd + 1, depth=PIPELINE_DEPTH))
                    # The users API: not in the ceiling nor in the hyper-bare floor.
                    if name not in ("ceiling", "hyper-bare"):
                        for label, path, headers in user_routes:
                            r = measure(server, path, args, rnd + 1, headers=headers, label=label)
                            closed.append(r)
                    rss.append({"server": name, "round": rnd + 1, "peak_rss_kib": server.peak_rss_kib()})
                finally:
                    server.stop()
        # Open loop, one pass: every server at the same fixed rates, 50% and 90% of axum's median
        # maximum over the rounds.
        for route in ["/json", "/db"]:
            base = median(max_rps.get(("axum", route), [])) or median(max_rps.get(("bareapi", route), []))
            if not base:
                continue
            for name, argv in servers_to_run(args, db.url):
                if name == "ceiling" and route != "/json":
                    continue
                server = Server(name, argv, db.url, args.server_core)
                try:
                    for share in (0.5, 0.9):
                        r = oha_fixed_rate(server, route, base * share, args)
                        r["share_of_axum_max"] = share
                        fixed.append(r)
                finally:
                    server.stop()
    finally:
        db.close()
    meta = {"started": started, "command": " ".join(["loadtest/run.py"] + sys.argv[1:]), "machine": machine_description(),
            "server_core": args.server_core, "load_core": args.load_core, "connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds, "servers": args.servers,
            "smoke": args.smoke}
    print(write_reports(args.out, meta, closed, fixed, rss))
    log(f"results in {os.path.relpath(args.out, ROOT)}/")
    bad = [r for r in closed + fixed if r["errors"] or r["non_2xx"]]
    if bad:
        for r in bad:
            where = f" (round {r['round']})" if "round" in r else ""
            log(f"FAILED: {r['server']} {r['route']}{where}: {r['errors']} errors, {r['non_2xx']} non-2xx")
        sys.exit(1)


if __name__ == "__main__":
    main()
