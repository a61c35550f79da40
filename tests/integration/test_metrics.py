"""Metrics an operator's Prometheus accepts, and the health endpoints.

/metrics passes `promtool check metrics` when promtool is installed (Debian's
`prometheus` package) and, always, a format check of our own: every sample's
family has # HELP and # TYPE, counters end in _total, nothing else does, no
name in ms or per second, histogram buckets cumulative and ending in +Inf with
_sum and _count, no series twice. /livez is 200 "ok" until a role stalls, then
503 naming it; /readyz is 503 naming what is not ready (a link down).
"""

import math
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from herdlib import SLOW, iamat, wait_for, whatsat

BOUND = 5.0         #  HERD_ALIVE_BOUND_MS
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def get(herd, name, path):
    """(status, body) of GET path on the node's metrics address; status 0
    when nothing answers (yet)."""
    url = f"http://127.0.0.1:{herd.metrics_port[name]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def check_format(text):
    """The exposition format's rules and Prometheus's naming conventions;
    returns {family: type}. Raises AssertionError on the first breach."""
    helps, types, series, seen_families = {}, {}, set(), []
    hist = {}           #  (family, labels without le) -> [(le, value)], plus sums and counts
    assert text.endswith("\n"), "text ends with a newline"
    for line in text.splitlines():
        assert line.strip(), "no blank lines"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert NAME.match(name) and help_text, line
            assert name not in helps, f"second HELP for {name}"
            helps[name] = help_text
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in types, f"second TYPE for {name}"
            assert name in helps, f"TYPE before HELP for {name}"
            types[name] = kind
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels_text, value = m.groups()
        value = float(value)
        labels = dict(LABEL.findall(labels_text or ""))
        family, part = name, None
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family, part = name[:-len(suffix)], suffix
        assert family in helps and family in types, f"{name}: no HELP/TYPE before it"
        if not seen_families or seen_families[-1] != family:
            assert family not in seen_families, f"{family}: samples not together"
            seen_families.append(family)
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, f"duplicate series {line!r}"
        series.add(key)
        kind = types[family]
        if kind == "counter":
            assert family.endswith("_total") and value >= 0, line
        else:
            assert not family.endswith("_total"), f"{family}: a {kind} named like a counter"
        assert not re.search(r"_(ms|per_s|milliseconds|microseconds)(_|$)", family), family
        assert "le" not in labels or part == "_bucket", line
        if kind == "histogram":
            assert part, f"{line!r}: a histogram sample is a _bucket, _sum or _count"
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            entry = hist.setdefault((family, rest), {"buckets": []})
            if part == "_bucket":
                entry["buckets"].append((float(labels["le"]), value))
            else:
                entry[part] = value
    for (family, rest), entry in hist.items():
        buckets = entry["buckets"]
        assert buckets and buckets[-1][0] == math.inf, f"{family}: last bucket is not +Inf"
        assert [le for le, _ in buckets] == sorted(le for le, _ in buckets), family
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{family}: buckets not cumulative {counts}"
        assert "_sum" in entry and "_count" in entry, f"{family}: no _sum or _count"
        assert entry["_count"] == counts[-1], f"{family}: _count is not the +Inf bucket"
    return types


def promtool(text):
    """Run `promtool check metrics` on text when promtool is installed."""
    tool = shutil.which("promtool")
    if not tool:
        return None
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_format_check_catches_what_it_should():
    """The format check itself refuses what the old /metrics served."""
    good = ('# HELP a_total A.\n# TYPE a_total counter\na_total{node="x"} 1\n'
            '# HELP h_seconds H.\n# TYPE h_seconds histogram\n'
            'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="+Inf"} 2\n'
            'h_seconds_sum 0.5\nh_seconds_count 2\n')
    assert check_format(good) == {"a_total": "counter", "h_seconds": "histogram"}
    for bad in ['herd_bus_clients{node="x"} 3\n',                         #  no HELP/TYPE
                "# HELP a A.\n# TYPE a counter\na 1\n",                   #  counter w/o _total
                "# HELP a_total A.\n# TYPE a_total gauge\na_total 1\n",
                "# HELP a_p99_ms A.\n# TYPE a_p99_ms gauge\na_p99_ms 1\n",
                "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                #  duplicate series
                good.replace('le="+Inf"} 2', 'le="+Inf"} 0'),             #  not cumulative
                good.replace('h_seconds_bucket{le="+Inf"} 2\n', "")]:     #  no +Inf
        with pytest.raises(AssertionError):
            check_format(bad)


def test_metrics_conform(make_herd, standin):
    """A live node's /metrics, with traffic through every role: promtool (or
    our own check) passes, latencies are histograms in seconds, and the
    build and start time are there."""
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")],
                     places_url=standin.url).start()
    herd.wait_links()
    iamat(herd.port("Hill"), "metric0", "+1+1", 5)
    wait_for(lambda: herd.converged(), 10, what="convergence")
    first, _ = whatsat(herd.port("Smith"), "metric0", 10, 2)
    assert first.startswith(b"AT Hill ")

    def scraped():
        status, text = get(herd, "Smith", "/metrics")
        return (status == 200 and 'herd_places_latency_seconds_count{node="Smith"} 1\n' in text
                and 'herd_gateway_whatsat_seconds_count{node="Smith"} 1\n' in text and text)
    text = wait_for(scraped, 10 * SLOW, interval=0.2, what="both latency histograms")
    types = check_format(text)
    assert types["herd_gateway_whatsat_seconds"] == "histogram"
    assert types["herd_places_latency_seconds"] == "histogram"
    assert types["herd_bus_applied_total"] == "counter"
    assert types["herd_bus_clients"] == "gauge"
    assert 'herd_bus_link_up{node="Smith",peer="Hill"} 1\n' in text
    assert 'herd_gateway_whatsat_seconds_bucket{node="Smith",le="+Inf"} 1\n' in text
    assert re.search(r'^herd_build_info\{node="Smith",version="[^"]+",journal="HERDJ\d+",'
                     r'zmq="[\d.]+"\} 1$', text, re.M), text
    started = float(re.search(r'^herd_process_start_time_seconds\{node="Smith"\} (\S+)$', text,
                              re.M).group(1))
    assert time.time() - 120 < started <= time.time()
    assert re.search(r'^herd_actor_stalled\{node="Smith",role="bus"\} 0$', text, re.M)
    checked = promtool(text)
    print("promtool:", "not installed: format check only" if checked is None
          else (checked.strip() or "clean"))
    print(f"{len(types)} families, {len(text.splitlines())} lines")


@pytest.mark.parametrize("mode", ["split"])
def test_livez_names_a_stopped_gateway(make_herd):
    """A healthy node is live; SIGSTOP a split node's gateway and, past the
    bound, /livez is 503 naming it (and /readyz too); SIGCONT, live again."""
    herd = make_herd(names=["Hill"], edges=[]).start()
    wait_for(lambda: get(herd, "Hill", "/livez") == (200, "ok\n"), 10, what="live")
    wait_for(lambda: get(herd, "Hill", "/readyz") == (200, "ok\n"), 10, what="ready")
    gateway = herd.procs["Hill"][2]
    gateway.send_signal(signal.SIGSTOP)
    try:
        status, body = wait_for(
            lambda: (lambda r: r[0] == 503 and "gateway stalled" in r[1] and r)(
                get(herd, "Hill", "/livez")), BOUND + 3, interval=0.1, what="gateway not live")
        assert status == 503 and "gateway stalled: no STATS reached the monitor for " in body, body
        status, body = get(herd, "Hill", "/readyz")
        assert status == 503 and "gateway stalled" in body, body
    finally:
        gateway.send_signal(signal.SIGCONT)
    wait_for(lambda: get(herd, "Hill", "/livez") == (200, "ok\n"), 5, interval=0.1,
             what="live again")


def test_readyz_follows_a_link(make_herd):
    """Ready when every link is up; `herd link A B down` makes A not ready,
    naming the peer; up again, ready again. /livez stays ok throughout."""
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")]).start()
    herd.wait_links()
    wait_for(lambda: get(herd, "Hill", "/readyz") == (200, "ok\n"), 10, what="ready")
    assert get(herd, "Hill", "/nothing")[0] == 404
    herd.link("Hill", "Smith", "down")
    status, body = wait_for(lambda: (lambda r: r[0] == 503 and r)(get(herd, "Hill", "/readyz")),
                            5 * SLOW, interval=0.1, what="not ready")
    assert status == 503 and body == "link to Smith down\n", body
    assert get(herd, "Hill", "/livez") == (200, "ok\n")
    herd.link("Hill", "Smith", "up")
    wait_for(lambda: get(herd, "Hill", "/readyz") == (200, "ok\n"), 10 * SLOW, interval=0.1,
             what="ready again")
