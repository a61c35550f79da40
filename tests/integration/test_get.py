"""herd get: one client's stored record on each node, over the control socket."""

import re
import time
from datetime import datetime, timezone

from herdlib import iamat, wait_for

LINE = re.compile(r"^(\S+) (AT \S+ \S+ \S+ \S+ \S+) \(origin (\S+), applied (\S+(?: start)?), "
                  r"seq (\d+)\)$")


def records(herd, *args):
    """(exit code, {node: (AT line, origin, applied, seq) or 'none'/'unreachable'})."""
    r = herd.herd_cmd("get", *args)
    found = {}
    for line in r.stdout.splitlines():
        m = LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2, 3, 4, 5)
        else:
            name, rest = line.split(" ", 1)
            found[name] = rest
    return r.returncode, found, r


def applied_at(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def test_every_node_shows_the_same_record(make_herd):
    herd = make_herd().start()
    herd.wait_links()
    before = time.time()
    at = iamat(herd.port("Singleton"), "kiwi.cs.ucla.edu", "+34.068930-118.445127",
               f"{time.time():.9f}").decode()

    def everywhere():
        code, found, _ = records(herd, "kiwi.cs.ucla.edu")
        return code == 0 and found
    found = wait_for(everywhere, 10, what="every node to hold kiwi's record")
    after = time.time()
    assert sorted(found) == sorted(herd.names), found
    for name, (line, origin, applied, seq) in found.items():
        assert line == at and origin == "Singleton", (name, found[name])
        #  Applied by this run of the bus, in the window of the test (ms precision)
        assert before - 0.01 <= applied_at(applied) <= after + 0.01, (name, applied)
        assert int(seq) >= 1
    #  One node only, by name
    code, one, r = records(herd, "kiwi.cs.ucla.edu", "Hill")
    assert code == 0 and list(one) == ["Hill"] and one["Hill"][0] == at, r.stdout


def test_unknown_client_and_unknown_node(make_herd):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")]).start()
    code, found, r = records(herd, "nobody-at-all")
    assert code == 1 and found == {"Hill": "none", "Smith": "none"}, r.stdout
    r = herd.herd_cmd("get", "nobody-at-all", "Campbell")
    assert r.returncode == 2 and "Campbell" in r.stderr and r.stdout == "", r


def test_unreachable_node_and_a_record_from_the_journal(make_herd):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")]).start()
    herd.wait_links()
    at = iamat(herd.port("Hill"), "phone", "+1+1", f"{time.time():.9f}").decode()
    wait_for(lambda: records(herd, "phone")[0] == 0, 10, what="both to hold phone")
    herd.kill("Smith")
    code, found, r = records(herd, "phone")
    assert code == 1 and found["Smith"] == "unreachable" and found["Hill"][0] == at, r.stdout
    code, found, r = records(herd, "phone", "Hill")
    assert code == 0 and list(found) == ["Hill"], r.stdout
    #  Restarted, Smith holds the record from its journal: applied "at start"
    herd.start("Smith")
    found = wait_for(lambda: records(herd, "phone", "Smith")[0] == 0
                     and records(herd, "phone", "Smith")[1], 10, what="Smith back")
    assert found["Smith"][0] == at and found["Smith"][2] == "at start", found


def test_get_speaks_curve(make_herd):
    herd = make_herd(names=["Hill", "Smith"], edges=[("Hill", "Smith")], curve=True).start()
    herd.wait_links()
    at = iamat(herd.port("Smith"), "agent", "+1+1", f"{time.time():.9f}").decode()

    def both():
        code, found, _ = records(herd, "agent")
        return code == 0 and found
    found = wait_for(both, 10, what="both to hold agent's record, asked with CURVE")
    assert {line for line, *_ in found.values()} == {at}, found
