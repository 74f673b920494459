#!/usr/bin/env python3
"""Side-by-side benchmark of our room server against the Node.js `ws` baseline it replaces.

Every trial starts a fresh server process pinned to core 0 (`taskset -c 0`) and runs the load
generator pinned to core 1; the two servers take turns. Our server runs with persistence on
(the embedded SQLite store in a fresh directory). Only 127.0.0.1 is used; every run is bounded.

Usage: python3 tests/bench/bench.py [--quick]    (prints a Markdown report)
       python3 tests/bench/bench.py --cluster [--quick]
           one process against two nodes of one room on one JetStream stream (`--nats-url`,
           a local nats-server -js; each node its own SQLite), N=1000, half the connections
           on each node: peak deliveries/s, p99 and CPU per delivery of each process.
       python3 tests/bench/bench.py --join [--n N]... [--ours-bin PATH]...
           only the join figure: N people (1,000, 5,000 and 10,000, or each --n) connect and
           identify at once, until the room is quiet; each --ours-bin adds another build of
           our server (an earlier one, say) to the same run. The Node baseline runs up to
           N=5,000 only (at 10,000 it would take over ten minutes).
       python3 tests/bench/bench.py --idle | --chat-memory | --versus [--ours-bin PATH]...
           resident bytes per idle connection (N=5000); per connection after 1,000 joined and
           chatted; CPU per delivery and latency at 50k and 320k/s: this build and others.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SERVER = os.path.join(TARGET, "release", "real-server")
LOADGEN = os.path.join(TARGET, "release", "loadgen")
BASELINE = os.path.join(ROOT, "tests", "bench", "baseline", "server.js")
QUICK = "--quick" in sys.argv
TRIAL_SECONDS = 3 if QUICK else 5
SENDERS = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def healthy(server, timeout=30):
    """Whether `server` answers /healthz with 200 within `timeout` s (a node listens before it
    has joined the room's stream)."""
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline and server.proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


class Server:
    """A fresh server process on core 0: ours (`bin`, our build by default) or the baseline."""
    """A fresh server process for one trial."""

    def __init__(self, kind, bin=None, extra=()):
        self.kind = kind
        self.port = free_port()
        self.dir = None
        if kind == "ours":
            self.dir = tempfile.mkdtemp(prefix="cahat-bench-")
            cmd = [bin or SERVER, "--port", str(self.port), "--data-dir", self.dir,
                   "--rate-burst", "1000000", "--rate-per-second", "1000000",
                   "--frame-burst", "1000000", "--frames-per-second", "1000000",
                   "--identity-burst", "1000000", "--queue-frames", "4096",
                   "--max-connections", "20000", "--max-connections-per-address", "20000",
                   *extra]
        else:
            cmd = ["node", BASELINE, str(self.port)]
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        wait_port(self.port, self.proc)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def loadgen_args(self):
        return ["--port", str(self.port), "--server-pid", str(self.proc.pid)]


NATS = os.path.join(os.environ.get("CAHAT_VENV", os.path.expanduser("~/.cache/cahat/venv")),
                    "bin", "nats-server")


class Cluster:
    """A fresh NATS (one `nats-server -js`, or a cluster of them as deploy/nats/nats.conf runs
    it, the room's stream with a replica on each) and `nodes` nodes of one room, all on core 0
    (as one process is)."""

    kind = "cluster"

    def __init__(self, nodes=2, nats_servers=1):
        self.nats_dir = tempfile.mkdtemp(prefix="cahat-bench-nats-")
        self.nats_ports = [free_port() for _ in range(nats_servers)]
        routes = [free_port() for _ in range(nats_servers)]
        self.nats = []
        for i, port in enumerate(self.nats_ports):
            if nats_servers == 1:
                cmd = [NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", self.nats_dir]
                env = None
            else:
                cmd = [NATS, "-c", os.path.join(ROOT, "deploy", "nats", "nats.conf")]
                env = dict(os.environ, CAHAT_NATS_NAME=f"nats-{i + 1}",
                           CAHAT_NATS_CLIENTS=f"127.0.0.1:{port}",
                           CAHAT_NATS_ROUTES=f"127.0.0.1:{routes[i]}",
                           CAHAT_NATS_STORE=os.path.join(self.nats_dir, f"nats-{i + 1}"),
                           **{f"CAHAT_NATS_ROUTE_{j + 1}": f"nats://127.0.0.1:{r}"
                              for j, r in enumerate(routes)})
            self.nats.append(subprocess.Popen(["taskset", "-c", "0", *cmd], env=env,
                                              stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        for port, proc in zip(self.nats_ports, self.nats):
            wait_port(port, proc)
        room = f"bench-{self.nats_ports[0]}"
        url = ",".join(f"nats://127.0.0.1:{p}" for p in self.nats_ports)
        extra = ["--nats-url", url, "--room-id", room, "--stream-replicas", str(nats_servers)]
        self.nodes = []
        for _ in range(nodes):
            # A node of a NATS cluster that is still electing its leaders refuses to start:
            # tried again.
            for attempt in range(30):
                try:
                    node = Server("ours", extra=extra)
                except RuntimeError:
                    node = None
                if node and healthy(node):
                    self.nodes.append(node)
                    break
                if node:
                    node.close()
                if attempt == 29:
                    raise RuntimeError("a node did not join the room's stream")
                time.sleep(1)
        self.port = self.nodes[0].port
        self.proc = self.nodes[0].proc

    def loadgen_args(self):
        return ["--port", str(self.nodes[0].port),
                *(a for n in self.nodes[1:] for a in ("--also-port", str(n.port))),
                *(a for n in self.nodes for a in ("--server-pid", str(n.proc.pid))),
                *(a for p in self.nats for a in ("--server-pid", str(p.pid)))]

    def close(self):
        for node in self.nodes:
            node.close()
        for proc in self.nats:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(self.nats_dir, ignore_errors=True)


def run_loadgen(cmd):
    """Runs the load generator: the figures of its report line (and the line), or its error."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    line = out.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+|NaN|nan|inf)", line)
            if v.lower() not in ("nan", "inf")} | {"line": line}


def load(server, *args):
    cmd = ["taskset", "-c", "1", LOADGEN, *server.loadgen_args(), *map(str, args)]
    if server.kind in ("ours", "cluster"):
        cmd.append("--identify")
    return run_loadgen(cmd)


def trial(kind, connections, rate, bin=None):
    server = Cluster() if kind == "cluster" else Server(kind, bin)
    try:
        return load(server, "--connections", connections, "--senders", SENDERS,
                    "--rate", rate, "--seconds", TRIAL_SECONDS)
    finally:
        server.close()


def ok(result):
    return ("error" not in result and result.get("missing", 1) == 0
            and result.get("duplicates", 1) == 0 and result.get("p99_ms", 1e9) < 100)


class PeakSearch:
    """Highest message rate whose deliveries all arrive with p99 under 100 ms: double the rate
    until a trial fails, then bisect. One step at a time, so two searches can take turns."""

    def __init__(self, kind, connections, start_rate):
        self.kind, self.connections = kind, connections
        self.rate, self.best, self.fail = start_rate, None, None
        self.bisections = 2 if QUICK else 3
        self.done = False

    def step(self):
        # A failing trial is repeated once: a single stall of either process (a GC pause, the
        # VM) can push one trial's p99 past the limit at a rate that otherwise passes.
        for attempt in range(2):
            result = trial(self.kind, self.connections, self.rate)
            print(f"  {self.kind:8} N={self.connections} rate={self.rate:.0f}: "
                  f"{result.get('line', result.get('error'))}", file=sys.stderr, flush=True)
            passed = ok(result)
            if passed:
                break
        if passed:
            self.best = result
        if self.fail is None:  # still doubling
            if passed and self.rate * 2 < 1e6:
                self.rate *= 2
                return
            if not passed:
                self.fail = self.rate
        else:  # bisecting
            if not passed:
                self.fail = self.rate
            self.bisections -= 1
        if self.best is None or self.fail is None or self.bisections <= 0:
            self.done = True
            return
        self.rate = (self.best["rate"] + self.fail) / 2


def peaks(connections, start_rate, kinds=("baseline", "ours")):
    """Both servers' peak searches, taking turns trial by trial."""
    searches = [PeakSearch(kind, connections, start_rate) for kind in kinds]
    while not all(s.done for s in searches):
        for search in searches:
            if not search.done:
                search.step()
    return {s.kind: s.best for s in searches}


def idle_memory(kind, connections, bin=None):
    server = Server(kind, bin)
    try:
        # Connected, not identified, for both: the baseline has no identities, and identifying
        # makes each join a broadcast to everyone (measured by the N=5000 peak instead).
        cmd = ["taskset", "-c", "1", LOADGEN, "--port", str(server.port), "--server-pid",
               str(server.proc.pid), "--connections", str(connections), "--idle"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        match = re.search(r"bytes_per_connection=(\d+)", out.stdout)
        return float(match.group(1)) if match else None
    finally:
        server.close()


def join(kind, connections, bin=None):
    """N connections open and identify at once (the baseline gets the same frames and
    broadcasts each, as the design it stands for announced every join to everyone); how long
    until the room is quiet, and how many frames that cost each connection."""
    server = Server(kind, bin)
    try:
        return run_loadgen(["taskset", "-c", "1", LOADGEN, "--port", str(server.port),
                            "--connections", str(connections), "--senders", str(connections),
                            "--identify", "--join"])
    finally:
        server.close()


BASELINE_MAX_JOIN = 5000


def join_only():
    runs = ours_bin_runs()
    sizes = [int(sys.argv[i + 1]) for i, a in enumerate(sys.argv) if a == "--n"]
    print("| N | server | joined_s | frames per connection | closed |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes or (1000, 5000, 10000):
        for kind, bin in runs:
            if kind == "baseline" and n > BASELINE_MAX_JOIN:
                print(f"  baseline N={n}: not run (over ten minutes)", file=sys.stderr)
                continue
            r = join(kind, n, bin)
            name = "baseline (Node ws)" if kind == "baseline" else (bin or "ours")
            print(f"  {name} N={n}: {r.get('line', r.get('error'))}", file=sys.stderr, flush=True)
            print(f"| {n} | {name} | {fmt(r.get('joined_s'))} | "
                  f"{fmt(r.get('frames_per_connection'))} | {fmt(r.get('closed'))} |", flush=True)


def versus_only():
    """This build against each `--ours-bin` build at N=1000, in turns, trial by trial: CPU per
    delivery and latency at 50k and 320k deliveries/s (50 and 320 messages/s)."""
    runs = [bin for kind, bin in ours_bin_runs() if kind == "ours"]
    print("| build | deliveries/s | server CPU µs per delivery | p50 ms | p99 ms | missing |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rate in (50, 320):
        for _ in range(2):
            for bin in runs:
                r = trial("ours", 1000, rate, bin)
                name = bin or "ours"
                print(f"  {name} rate={rate}: {r.get('line', r.get('error'))}", file=sys.stderr,
                      flush=True)
                print(f"| {name} | {rate * 1000:,} | {fmt(r.get('server_cpu_us_per_delivery'))} | "
                      f"{fmt(r.get('p50_ms'))} | {fmt(r.get('p99_ms'))} | {fmt(r.get('missing'))} |",
                      flush=True)


def storing_only():
    """What storing costs: one person writes 2,000 messages/s for a trial to one reader, so
    the server's work is mostly taking, storing and echoing each message; this build against
    each `--ours-bin` build (one without sealing, for the cost of encryption at rest), in
    turns, twice: server CPU per stored message."""
    runs = [bin for kind, bin in ours_bin_runs() if kind == "ours"]
    print("| build | messages/s | server CPU µs per stored message | p50 ms | p99 ms | missing |")
    print("| --- | --- | --- | --- | --- | --- |")
    for _ in range(2):
        for bin in runs:
            server = Server("ours", bin)
            try:
                r = load(server, "--connections", 2, "--senders", 1, "--rate", 2000,
                         "--seconds", TRIAL_SECONDS)
            finally:
                server.close()
            name = bin or "ours"
            print(f"  {name}: {r.get('line', r.get('error'))}", file=sys.stderr, flush=True)
            per_delivery = r.get("server_cpu_us_per_delivery")
            # Each message is delivered twice (its echo and the reader's copy).
            per_message = per_delivery * 2 if per_delivery is not None else None
            print(f"| {name} | 2,000 | {fmt(per_message)} | {fmt(r.get('p50_ms'))} | "
                  f"{fmt(r.get('p99_ms'))} | {fmt(r.get('missing'))} |", flush=True)


def chat_memory(kind, bin=None):
    """1,000 people connect, identify and chat (1,000 messages/s for 5 s, each from one of
    them), all still connected: the server's resident bytes per connection over its start."""
    server = Server(kind, bin)
    try:
        return run_loadgen(["taskset", "-c", "1", LOADGEN, *server.loadgen_args(),
                            "--connections", "1000",
                            "--senders", os.environ.get("CHAT_SENDERS", "1000"), "--identify",
                            "--rate", "1000",
                            "--seconds", "5"])
    finally:
        server.close()


def ours_bin_runs():
    """The baseline, this build, and each `--ours-bin` build: (kind, binary) in turn order."""
    bins = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--ours-bin"]
    return [("baseline", None), ("ours", None)] + [("ours", b) for b in bins]


def in_turns(measure, header):
    """`measure(kind, bin)` for every run of `ours_bin_runs`, in turns, twice (fresh processes
    each time): a table of the two figures of each."""
    figures = {}
    for _ in range(2):
        for kind, bin in ours_bin_runs():
            name = "baseline (Node ws)" if kind == "baseline" else (bin or "ours")
            value, line = measure(kind, bin)
            print(f"  {name}: {line}", file=sys.stderr, flush=True)
            figures.setdefault(name, []).append(value)
    print(f"| server | {header} (two runs) |")
    print("| --- | --- |")
    for name, values in figures.items():
        print(f"| {name} | {' / '.join(fmt(v) for v in values)} |")


def chat_memory_only():
    """Resident bytes per connection after 1,000 joined and chatted."""
    def measure(kind, bin):
        r = chat_memory(kind, bin)
        return r.get("bytes_per_connection_after_chat"), r.get("line", r.get("error"))
    in_turns(measure, "resident bytes per connection after 1,000 joined and chatted")


def idle_only():
    """Resident bytes per idle connection at N=5000."""
    def measure(kind, bin):
        value = idle_memory(kind, 5000, bin)
        return value, fmt(value)
    in_turns(measure, "resident bytes per idle connection, N=5000")


def fmt(value, unit=""):
    return "n/a" if value is None else f"{value:,.{0 if value >= 100 else 2}f}{unit}"


def main():
    for path in (SERVER, LOADGEN):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run tests/bench/run.sh (it builds them)")
    rows = []

    # 1. Peak deliveries/s (p99 < 100 ms, nothing missing) at N=1000 and N=5000.
    for n, start in ((1000, 5), (5000, 2)):
        results = peaks(n, start)
        b, o = results["baseline"], results["ours"]
        bv = b and b["deliveries_per_s"]
        ov = o and o["deliveries_per_s"]
        rows.append((f"peak deliveries/s, N={n} (p99 < 100 ms, none missing)", bv, ov,
                     ov / bv if bv and ov else None, "higher is better"))

    # 2. Server CPU µs per delivery at N=1000, 50k deliveries/s (50 messages/s).
    # 4. p50/p99 latency at N=1000, 20k deliveries/s (20 messages/s).
    for label, rate, keys in (("N=1000, 50k deliveries/s", 50, ["server_cpu_us_per_delivery"]),
                              ("N=1000, 20k deliveries/s", 20, ["p50_ms", "p99_ms"])):
        results = {}
        for kind in ("baseline", "ours"):  # alternate turns
            results[kind] = trial(kind, 1000, rate)
            print(f"  {kind:8} {label}: {results[kind].get('line', results[kind].get('error'))}",
                  file=sys.stderr, flush=True)
        for key in keys:
            bv, ov = results["baseline"].get(key), results["ours"].get(key)
            rows.append((f"{key} at {label}", bv, ov, ov / bv if bv and ov else None,
                         "lower is better"))

    # 3. Resident memory per idle connection at N=5000.
    bv, ov = idle_memory("baseline", 5000), idle_memory("ours", 5000)
    rows.append(("resident bytes per idle connection, N=5000", bv, ov,
                 ov / bv if bv and ov else None, "lower is better"))

    # 5. Joining: 5,000 people connect and identify at once; until the room is quiet.
    jb, jo = join("baseline", 5000), join("ours", 5000)
    for key, label in (("joined_s", "seconds until 5,000 joining people are all told"),
                       ("frames_per_connection", "frames per connection for 5,000 joins")):
        bv, ov = jb.get(key), jo.get(key)
        rows.append((label, bv, ov, ov / bv if bv and ov else None, "lower is better"))

    print("| measure | baseline (Node ws) | ours | ours/baseline | |")
    print("| --- | --- | --- | --- | --- |")
    for name, bv, ov, ratio, note in rows:
        print(f"| {name} | {fmt(bv)} | {fmt(ov)} | {fmt(ratio)}x | {note} |")


def deploy_main():
    """One process against three nodes on a three-server NATS cluster (deploy/), N=3,000
    spread over the nodes, at two rates, in turns: latency, and CPU per delivery in all and by
    process."""
    if not os.path.exists(NATS):
        sys.exit(f"missing {NATS}: scripts/setup.sh installs nats-server into the venv")
    print("| setup | deliveries/s | p50 ms | p99 ms | missing | server CPU µs per delivery | "
          "by process (µs per delivery) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for rate in (10, 40):
        for kind in ("ours", "deploy"):
            server = Server("ours") if kind == "ours" else Cluster(nodes=3, nats_servers=3)
            try:
                r = load(server, "--connections", 3000, "--senders", SENDERS, "--rate", rate,
                         "--seconds", TRIAL_SECONDS)
            finally:
                server.close()
            name = "one process" if kind == "ours" else "3 nodes + 3 nats-servers"
            print(f"  {name} rate={rate}: {r.get('line', r.get('error'))}", file=sys.stderr,
                  flush=True)
            by = re.search(r"server_cpu_us_per_delivery_by_process=([\d.,]+)", r.get("line", ""))
            print(f"| {name} | {fmt(r.get('deliveries_per_s'))} | {fmt(r.get('p50_ms'))} | "
                  f"{fmt(r.get('p99_ms'))} | {fmt(r.get('missing'))} | "
                  f"{fmt(r.get('server_cpu_us_per_delivery'))} | {by.group(1) if by else ''} |",
                  flush=True)


def cluster_main():
    """One process against a two-node cluster of the same room, side by side in one run."""
    if not os.path.exists(NATS):
        sys.exit(f"missing {NATS}: scripts/setup.sh installs nats-server into the venv")
    results = peaks(1000, 5, kinds=("ours", "cluster"))
    fixed = {}
    for kind in ("ours", "cluster"):  # the cost at one rate both sustain
        fixed[kind] = trial(kind, 1000, 20)
        print(f"  {kind:8} N=1000 rate=20: {fixed[kind].get('line', fixed[kind].get('error'))}",
              file=sys.stderr, flush=True)
    rows = []
    o, c = results["ours"], results["cluster"]
    ov, cv = o and o["deliveries_per_s"], c and c["deliveries_per_s"]
    rows.append(("peak deliveries/s, N=1000 (p99 < 100 ms, none missing)", ov, cv,
                 cv / ov if ov and cv else None, "higher is better"))
    for key in ("p50_ms", "p99_ms", "server_cpu_us_per_delivery"):
        ov, cv = fixed["ours"].get(key), fixed["cluster"].get(key)
        rows.append((f"{key} at N=1000, 20k deliveries/s", ov, cv,
                     cv / ov if ov and cv else None, "lower is better"))
    print("| measure | one process | two nodes + nats-server | cluster/one | |")
    print("| --- | --- | --- | --- | --- |")
    for name, ov, cv, ratio, note in rows:
        print(f"| {name} | {fmt(ov)} | {fmt(cv)} | {fmt(ratio)}x | {note} |")
    by = re.search(r"server_cpu_us_per_delivery_by_process=([\d.,]+)",
                   fixed["cluster"].get("line", ""))
    if by:
        print(f"\nCPU µs per delivery at 20k deliveries/s, by process (node 1, node 2, "
              f"nats-server): {by.group(1)}")


if __name__ == "__main__":
    if "--cluster" in sys.argv:
        cluster_main()
    elif "--deploy" in sys.argv:
        deploy_main()
    elif "--join" in sys.argv:
        join_only()
    elif "--idle" in sys.argv:
        idle_only()
    elif "--storing" in sys.argv:
        storing_only()
    elif "--versus" in sys.argv:
        versus_only()
    elif "--chat-memory" in sys.argv:
        chat_memory_only()
    else:
        main()
