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
  - the Node.js and Go references, for teams that migrate from them: Fastify + pg under
    node:cluster with one worker (loadtest/reference/node, installed with `npm ci`), and
    net/http + pgxpool with GOMAXPROCS=1 (loadtest/reference/go, built with Debian's Go 1.19
    and Debian's pgx v4, installed with apt-get when missing),
  - the ceiling responder (no HTTP parsing, canned answers: the machine's limit),

over every route of the benchmark suite, the users API reads (not hyper-bare and ceiling), and
/plaintext pipelined 16 deep, with wrk (closed loop, fixed connections, warm-up, fixed
duration); then oha at fixed request rates (open loop, latency-corrected) at 50% and 90% of the
axum reference's median maximum (not Node.js and Go: far past what they hold on one core), and
bareapi, Node.js and Go on every benchmark route and the single users read at half of the slower
reference's median maximum on that route.

Before a server is measured for the first time, its answers are checked (status, headers,
bodies: the TechEmpower rules, /updates read back from the database, the users reads with their
401s, ETag revalidation and gzip); a server that fails them fails the run.

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

  loadtest/run.py              # the full run (about 25-30 minutes)
  loadtest/run.py --smoke      # 1 s per run, one round: checks that the suite works (CI runs this)

Only 127.0.0.1 is targeted; every run is bounded in time and stops by itself.
"""
import argparse
import base64
import datetime
import email.utils
import gzip
import hashlib
import html
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
RELEASE = os.path.join(TARGET, "release")
NODE_DIR = os.path.join(ROOT, "loadtest", "reference", "node")
GO_DIR = os.path.join(ROOT, "loadtest", "reference", "go")
GO_BIN = os.path.join(TARGET, "reference", "go-ref")
# The Go reference builds with Debian's Go and Debian's packaged pgx v4 (GOPATH mode): this
# kind of machine reaches Debian's archive but not the Go module proxy.
GO_ENV = {"GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": "", "GOTOOLCHAIN": "local",
          "GOCACHE": os.path.join(TARGET, "reference", "go-cache")}
GO_PACKAGES = ["golang-go", "golang-github-jackc-pgx-v4-dev"]
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


def apt_install(packages, why):
    if os.geteuid() != 0:
        sys.exit(f"{why}: install them (apt-get install {' '.join(packages)})")
    log(f"installing {' '.join(packages)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages, env=env, stdout=subprocess.DEVNULL)


def go_reference_installed():
    return (shutil.which("go") is not None
            and os.path.isdir(os.path.join(GO_ENV["GOPATH"], "src", "github.com", "jackc", "pgx", "v4", "pgxpool")))


def ensure_tools(servers):
    if shutil.which("wrk") is None:
        apt_install(["wrk"], "wrk not found")
    if "node" in servers and (shutil.which("node") is None or shutil.which("npm") is None):
        apt_install(["nodejs", "npm"], "the Node.js reference needs node and npm")
    if "node" in servers:
        major = run(["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True).stdout.strip()
        if int(major) < 20:
            sys.exit(f"the Node.js reference (Fastify 5) needs Node.js 20 or newer, found {major}")
    if "go" in servers and not go_reference_installed():
        apt_install(GO_PACKAGES, "the Go reference needs Go and pgx v4")
    if shutil.which("oha") is None:
        log("installing oha (cargo install oha --locked)")
        run(["cargo", "install", "oha", "--locked", "--quiet"])
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (util-linux)")


def build(servers):
    log("building in release: bareapi, hyper-bare, axum-ref, actix-ref, ceiling")
    run(["cargo", "build", "--release", "--quiet", "-p", "bareapi", "-p", "hyper-bare", "-p", "axum-ref",
         "-p", "actix-ref", "-p", "ceiling"], cwd=ROOT)
    if "node" in servers:
        # npm ci installs exactly package-lock.json; again only when the lock file changed.
        with open(os.path.join(NODE_DIR, "package-lock.json"), "rb") as f:
            lock = hashlib.sha256(f.read()).hexdigest()
        stamp = os.path.join(NODE_DIR, "node_modules", ".bareapi-lock-sha256")
        try:
            with open(stamp) as f:
                current = f.read().strip() == lock
        except OSError:
            current = False
        if not current:
            log("installing the Node.js reference's dependencies (npm ci)")
            run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, stdout=subprocess.DEVNULL)
            with open(stamp, "w") as f:
                f.write(lock + "\n")
    if "go" in servers:
        log("building the Go reference (go build, Debian's Go and pgx)")
        run(["go", "build", "-o", GO_BIN, "."], cwd=GO_DIR, env=dict(os.environ, **GO_ENV))


def reference_versions(servers):
    """What the Node.js and Go references ran on, for the report."""
    out = {}
    if "node" in servers:
        out["node"] = run(["node", "--version"], capture_output=True).stdout.strip()
        for pkg in ("fastify", "pg"):
            with open(os.path.join(NODE_DIR, "node_modules", pkg, "package.json")) as f:
                out[pkg] = json.load(f)["version"]
    if "go" in servers:
        version = run(["go", "env", "GOVERSION"], capture_output=True, env=dict(os.environ, **GO_ENV)).stdout
        out["go"] = version.strip().removeprefix("go")
        debian = run(["dpkg-query", "-W", "-f", "${Version}", "golang-github-jackc-pgx-v4-dev"],
                     capture_output=True).stdout.strip()
        out["pgx"] = f"{debian.split('-')[0]} (Debian {debian})"
    return out


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

    def pids(self):
        """The server's process and all its descendants (node:cluster's workers)."""
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def cpu_seconds(self):
        """utime + stime of the server's processes (all of them, for a server of several)."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime and stime are fields 14 and 15 of the whole line; here counted after "(comm)".
            total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def peak_rss_kib(self):
        """The peak RSS of the server's process, summed over its processes for a server of several."""
        total = None
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            total = (total or 0) + int(line.split()[1])
            except OSError:
                pass
        return total

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


def oha_fixed_rate(server, route, rate, args, headers=(), seconds=None, quiet=False):
    cmd = ["taskset", "-c", str(args.load_core), "oha", "--no-tui", "--output-format", "json", "-z",
           f"{seconds or args.fixed_duration}s", "-c", str(args.connections), "-q", str(int(rate)),
           "--latency-correction"]
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
    if not quiet:
        log(f"{server.name:14} {route:20} at {int(rate):>7}/s  p99 {result['p99_ms']:.3f} ms  "
            f"p99.9 {result['p999_ms']:.3f} ms")
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


class CheckFailed(Exception):
    pass


def fetch(addr, path, headers=None):
    """One GET; (status, headers with lower-case names, raw body)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def media_type(headers):
    return headers.get("content-type", "").split(";")[0].strip().lower()


def expect(ok, what):
    if not ok:
        raise CheckFailed(what)


def expected_fortunes():
    """The standard fortune rows plus the one added at request time, sorted by message."""
    with open(os.path.join(ROOT, "tests", "data", "tfb-fortunes.tsv"), encoding="utf-8") as f:
        rows = [tuple(line.rstrip("\n").split("\t", 1)) for line in list(f)[1:] if line.strip()]
    rows = [(int(i), m) for i, m in rows] + [(0, "Additional fortune added at request time.")]
    return sorted(rows, key=lambda r: r[1].encode())


FORTUNES_PAGE = re.compile(r"<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                           r"<tr><th>id</th><th>message</th></tr>((?:<tr><td>\d+</td><td>[^<>]*</td></tr>)*)"
                           r"</table></body></html>")
# A cell's text: no raw markup characters, every & the start of an entity.
ESCAPED_TEXT = re.compile(r"(?:[^<>&\"']|&(?:[a-zA-Z]+|#[0-9]+|#x[0-9a-fA-F]+);)*")


def stored_worlds(db_url):
    """Every `world` row, {id: randomnumber}, read with psql."""
    if shutil.which("psql") is None:
        sys.exit("psql not found: the response checks read back what /updates stored")
    out = run(["psql", db_url, "-tA", "-F", ",", "-c", "SELECT id, randomnumber FROM world"],
              capture_output=True).stdout
    return {int(a): int(b) for a, b in (line.split(",") for line in out.split())}


def check_world(v):
    expect(isinstance(v, dict) and list(v) == ["id", "randomNumber"], f"a world row is {{id, randomNumber}}: {v}")
    expect(all(isinstance(v[k], int) and 1 <= v[k] <= 10000 for k in v), f"world values in 1..=10000: {v}")


def check_ok(addr, path, media, headers=None):
    status, h, body = fetch(addr, path, headers)
    expect(status == 200, f"GET {path}: status {status} ({body[:200]!r})")
    expect(media_type(h) == media, f"GET {path}: Content-Type {h.get('content-type')!r}, want {media}")
    expect(h.get("server"), f"GET {path}: no Server header")
    try:
        expect(email.utils.parsedate_to_datetime(h.get("date", "")) is not None, "")
    except (TypeError, ValueError):
        raise CheckFailed(f"GET {path}: Date header missing or not an HTTP date: {h.get('date')!r}")
    return h, body


def check_benchmark_routes(addr, db_url):
    """The TechEmpower rules the Rust references follow: status, headers, bodies."""
    _, body = check_ok(addr, "/plaintext", "text/plain")
    expect(body == b"Hello, World!", f"/plaintext body {body!r}")
    _, body = check_ok(addr, "/json", "application/json")
    expect(json.loads(body) == {"message": "Hello, World!"}, f"/json body {body!r}")
    _, body = check_ok(addr, "/db", "application/json")
    check_world(json.loads(body))
    for query, n in (("queries=20", 20), ("queries=0", 1), ("queries=foo", 1), ("queries=501", 500), ("", 1)):
        _, body = check_ok(addr, f"/queries?{query}", "application/json")
        worlds = json.loads(body)
        expect(isinstance(worlds, list) and len(worlds) == n, f"/queries?{query}: {n} rows wanted, got {body[:200]!r}")
        for w in worlds:
            check_world(w)
    h, body = check_ok(addr, "/fortunes", "text/html")
    expect(h["content-type"].replace(" ", "").lower() == "text/html;charset=utf-8",
           f"/fortunes Content-Type {h['content-type']!r}, want text/html; charset=utf-8")
    page = FORTUNES_PAGE.fullmatch(body.decode("utf-8"))
    expect(page is not None, f"/fortunes page is not the fortunes table: {body[:300]!r}")
    cells = re.findall(r"<tr><td>(\d+)</td><td>([^<>]*)</td></tr>", page.group(1))
    for _, text in cells:
        expect(ESCAPED_TEXT.fullmatch(text) is not None, f"/fortunes: not HTML-escaped: {text!r}")
    got = [(int(i), html.unescape(text)) for i, text in cells]
    expect(got == expected_fortunes(), f"/fortunes rows {got}, want {expected_fortunes()}")
    before = stored_worlds(db_url)
    _, body = check_ok(addr, "/updates?queries=20", "application/json")
    worlds = json.loads(body)
    expect(isinstance(worlds, list) and len(worlds) == 20, f"/updates?queries=20: 20 rows wanted: {body[:200]!r}")
    for w in worlds:
        check_world(w)
    expect(len({w["id"] for w in worlds}) == 20, "/updates: one batch updates 20 distinct rows")
    stored = stored_worlds(db_url)
    expect(all(stored[w["id"]] == w["randomNumber"] for w in worlds), "/updates: the answer is not what is stored")
    expect(all(before[w["id"]] != w["randomNumber"] for w in worlds), "/updates: a row kept its old random number")
    for query, n in (("count=20", 20), ("count=0", 1), ("count=x", 1)):
        _, body = check_ok(addr, f"/cached-queries?{query}", "application/json")
        worlds = json.loads(body)
        expect(isinstance(worlds, list) and len(worlds) == n, f"/cached-queries?{query}: {n} rows wanted")
        for w in worlds:
            check_world(w)


RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def check_problem(addr, path, headers, status, want_www=None):
    got, h, body = fetch(addr, path, headers)
    expect(got == status, f"GET {path}: status {got}, want {status} ({body[:200]!r})")
    expect(media_type(h) == "application/problem+json", f"GET {path}: Content-Type {h.get('content-type')!r}")
    problem = json.loads(body)
    expect(problem.get("status") == status and problem.get("title") and problem.get("detail"),
           f"GET {path}: problem body {problem}")
    if want_www is not None:
        expect(h.get("www-authenticate") == want_www,
               f"GET {path}: WWW-Authenticate {h.get('www-authenticate')!r}, want {want_www!r}")


def check_user(u, want_id, owner):
    """A user as bareapi shows it: the email to its owner alone (a reference that sent every
    user's email would answer more bytes than bareapi, and the comparison would not be fair)."""
    keys = ["id", "email", "name", "created_at", "updated_at"] if owner else ["id", "name", "created_at", "updated_at"]
    expect(list(u) == keys, f"user keys {list(u)}, want {keys}")
    expect(u["id"] == want_id, f"user id {u['id']}, want {want_id}")
    expect(isinstance(u["name"], str) and u["name"].startswith("Load Test User Number "), f"user name {u['name']!r}")
    expect(all(RFC3339_UTC.fullmatch(u[k]) for k in ("created_at", "updated_at")), f"user timestamps {u}")


def check_users_routes(addr, ids, token):
    """The users reads as bareapi answers them: bearer token, JSON, ETag revalidation, gzip."""
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/users/{ids[0]}"
    h, body = check_ok(addr, path, "application/json", auth)
    check_user(json.loads(body), ids[0], owner=True)
    expect(re.fullmatch(r'"[0-9a-f]{32}"', h.get("etag", "")), f"GET {path}: ETag {h.get('etag')!r}")
    expect(h.get("cache-control") == "private, no-cache", f"GET {path}: Cache-Control {h.get('cache-control')!r}")
    expect("accept-encoding" in h.get("vary", "").lower(), f"GET {path}: Vary {h.get('vary')!r}")
    status, _, body = fetch(addr, path, dict(auth, **{"If-None-Match": h["etag"]}))
    expect(status == 304 and body == b"", f"GET {path} with its ETag: status {status}, want 304 with no body")
    check_problem(addr, path, {}, 401, "Bearer")
    unknown = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    check_problem(addr, path, {"Authorization": f"Bearer {unknown}"}, 401, 'Bearer error="invalid_token"')
    check_problem(addr, path, {"Authorization": "Bearer not-a-token"}, 401, 'Bearer error="invalid_token"')
    check_problem(addr, "/api/users/0", auth, 400)
    check_problem(addr, f"/api/users/{max(ids) + 1_000_000}", auth, 404)
    asked = list(reversed(ids)) + [max(ids) + 1_000_000]
    batch = f"/api/users?ids={','.join(map(str, asked))}"
    h, plain = check_ok(addr, batch, "application/json", auth)
    items = json.loads(plain)["items"]
    expect([u["id"] for u in items] == asked[:-1], f"GET {batch}: ids {[u['id'] for u in items]}, want {asked[:-1]}")
    for u in items:
        check_user(u, u["id"], owner=u["id"] == ids[0])
    h, body = check_ok(addr, batch, "application/json", dict(auth, **{"Accept-Encoding": "gzip"}))
    expect(h.get("content-encoding") == "gzip", f"GET {batch} (gzip): Content-Encoding {h.get('content-encoding')!r}")
    expect(re.fullmatch(r'"[0-9a-f]{32}-gzip"', h.get("etag", "")), f"GET {batch} (gzip): ETag {h.get('etag')!r}")
    expect(json.loads(gzip.decompress(body)) == json.loads(plain), f"GET {batch}: gzip and identity bodies differ")
    check_problem(addr, "/api/users?ids=1,x", auth, 400)


def check_responses(server, db_url, ids, token):
    """Exits the run when a server's answers break the rules (once per server, before measuring)."""
    if server.name == "ceiling":
        return  # canned bytes, no HTTP parsing and no database: nothing to check
    try:
        check_benchmark_routes(server.addr, db_url)
        if server.name not in ("ceiling", "hyper-bare"):
            check_users_routes(server.addr, ids, token)
    except CheckFailed as e:
        sys.exit(f"{server.name} failed the response checks: {e}")
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException) as e:
        sys.exit(f"{server.name} failed the response checks: {type(e).__name__}: {e}")
    log(f"{server.name}: responses checked")


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
        "node": ["node", os.path.join(NODE_DIR, "server.js"), "--listen", "127.0.0.1:0"] + w,
        "go": [GO_BIN, "--listen", "127.0.0.1:0"] + w,
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


RATIO_AGAINST = ["hyper-bare", "axum", "actix", "node", "go", "ceiling", "bareapi-mt"]
CPU_RATIO_AGAINST = ["hyper-bare", "axum", "node", "go", "ceiling"]
MIGRATED_FROM = {"node": "Node.js", "go": "Go"}


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


def write_reports(out_dir, meta, closed, fixed, rss_rounds, comparison_fixed=()):
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
                   "fixed_rate": fixed, "fixed_rate_against_node_and_go": list(comparison_fixed), "peak_rss_kib": rss,
                   "peak_rss_kib_by_round": rss_rounds}, f, indent=2)

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
    refs = [s for s in MIGRATED_FROM if s in servers and "bareapi" in servers]
    if refs:
        md += against_node_and_go(refs, routes, by, rat, comparison_fixed, rss, meta.get("references", {}))
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


def against_node_and_go(refs, routes, by, rat, comparison_fixed, rss, versions):
    """The section for teams that migrate from Node.js or Go: bareapi against each, one core each."""

    def num(x, spec):
        return format(x, spec) if x is not None else "-"

    def ratio_cell(route, other, key):
        x = rat.get((route, other), {}).get(key)
        return f"{x:.2f}×" if x else "-"

    at_rate = {(r["server"], r["route"]): r for r in comparison_fixed}
    names = " and ".join(MIGRATED_FROM[s] for s in refs)
    used = ", ".join(f"{k} {v}" for k, v in versions.items())
    md = ["", f"## bareapi against {names} (one core each)", "",
          "The references of loadtest/reference/node (Fastify, pg, node:cluster with one worker) and "
          "loadtest/reference/go (net/http, pgxpool, GOMAXPROCS=1)" + (f" ({used})" if used else "") + ": the "
          "same routes, SQL and database as bareapi. Requests/s and CPU/request are the closed-loop medians above "
          "(CPU summed over all of a server's processes); ratios are bareapi's over the other's, medians of the "
          "per-round ratios (req/s above 1× and CPU/req below 1× favour bareapi). p50/p99 are at one fixed rate "
          "per route that every server here holds (oha, open loop, latency-corrected): half of the slower "
          "reference's median maximum on that route.", "",
          "| route | req/s bareapi | " + " | ".join(f"req/s {s}" for s in refs) + " | "
          + " | ".join(f"req/s ×{s}" for s in refs) + " | CPU µs/req bareapi | "
          + " | ".join(f"CPU µs/req {s}" for s in refs) + " | " + " | ".join(f"CPU ×{s}" for s in refs)
          + " | fixed rate | p50/p99 ms bareapi | " + " | ".join(f"p50/p99 ms {s}" for s in refs) + " |",
          "|---|" + "---:|" * (2 + 4 * len(refs) + 2 + len(refs))]
    for route in routes:
        if ("bareapi", route) not in by or not any((s, route) in by for s in refs):
            continue
        cells = [num(by.get((s, route), {}).get("rps"), ".0f") for s in ["bareapi"] + refs]
        cells += [ratio_cell(route, s, "rps_ratio") for s in refs]
        cells += [num(by.get((s, route), {}).get("cpu_us_per_request"), ".2f") for s in ["bareapi"] + refs]
        cells += [ratio_cell(route, s, "cpu_ratio") for s in refs]
        fixed_rate = at_rate.get(("bareapi", route), {}).get("rate")
        cells.append(f"{fixed_rate}/s" if fixed_rate else "-")
        for s in ["bareapi"] + refs:
            r = at_rate.get((s, route))
            cells.append(f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if r else "-")
        md.append(f"| {route} | " + " | ".join(cells) + " |")
    md += ["", "| server | peak RSS (MiB, all processes) | bareapi / server |", "|---|---:|---:|"]
    for s in ["bareapi"] + refs:
        if rss.get(s):
            share = f"{rss['bareapi'] / rss[s]:.2f}×" if rss.get("bareapi") else "-"
            md.append(f"| {s} | {rss[s] / 1024:.1f} | {share} |")
    return md


COLORS = {"bareapi": "#1f77b4", "bareapi-mt": "#aec7e8", "hyper-bare": "#9467bd", "axum": "#d62728", "actix": "#2ca02c",
          "node": "#ff7f0e", "go": "#17becf", "ceiling": "#7f7f7f"}


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
    p.add_argument("--servers", default="ceiling,hyper-bare,bareapi,bareapi-mt,axum,actix,node,go")
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

    ensure_tools(args.servers)
    if not args.no_build:
        build(args.servers)
    db = Database()
    closed, fixed, rss, comparison_fixed = [], [], [], []
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
        checked = set()
        # Closed loop in rounds: every server once per round, round r starting at server r mod count.
        for rnd in range(args.rounds):
            first = rnd % len(specs)
            log(f"round {rnd + 1} of {args.rounds}")
            for name, argv in specs[first:] + specs[:first]:
                server = Server(name, argv, db.url, args.server_core)
                try:
                    if name not in checked:
                        check_responses(server, db.url, ids, token)
                        checked.add(name)
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
                            max_rps.setdefault((name, label), []).append(r["rps"])
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
                if name in ("node", "go"):
                    continue  # far past what they hold on one core: measured at rates of their own below
                server = Server(name, argv, db.url, args.server_core)
                try:
                    for share in (0.5, 0.9):
                        r = oha_fixed_rate(server, route, base * share, args)
                        r["share_of_axum_max"] = share
                        fixed.append(r)
                finally:
                    server.stop()
        # Open loop against Node.js and Go: bareapi, node and go on every route at one rate that
        # all of them hold, half of the slower reference's median maximum on that route.
        refs = [name for name in ("node", "go") if name in args.servers]
        if refs:
            comparison = [(route, route, []) for route in BENCH_ROUTES] + [user_routes[0]]
            rates = {}
            for label, _, _ in comparison:
                maxima = [median(max_rps.get((name, label), [])) for name in refs]
                if all(maxima):
                    rates[label] = max(1.0, 0.5 * min(maxima))
            for name, argv in servers_to_run(args, db.url):
                if name not in ["bareapi"] + refs:
                    continue
                server = Server(name, argv, db.url, args.server_core)
                try:
                    for label, path, headers in comparison:
                        if label in rates:
                            # A warm-up at the same rate first, as the closed loop has: Node's JIT
                            # and a fresh process's pools and caches are not what is measured.
                            oha_fixed_rate(server, path, rates[label], args, headers, seconds=args.warmup, quiet=True)
                            r = oha_fixed_rate(server, path, rates[label], args, headers)
                            r["route"] = label
                            r["share_of_reference_max"] = 0.5
                            comparison_fixed.append(r)
                finally:
                    server.stop()
    finally:
        db.close()
    meta = {"started": started, "command": " ".join(["loadtest/run.py"] + sys.argv[1:]), "machine": machine_description(),
            "server_core": args.server_core, "load_core": args.load_core, "connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds, "servers": args.servers,
            "smoke": args.smoke, "references": reference_versions(args.servers)}
    print(write_reports(args.out, meta, closed, fixed, rss, comparison_fixed))
    log(f"results in {os.path.relpath(args.out, ROOT)}/")
    bad = [r for r in closed + fixed + comparison_fixed if r["errors"] or r["non_2xx"]]
    if bad:
        for r in bad:
            where = f" (round {r['round']})" if "round" in r else ""
            log(f"FAILED: {r['server']} {r['route']}{where}: {r['errors']} errors, {r['non_2xx']} non-2xx")
        sys.exit(1)


if __name__ == "__main__":
    main()
