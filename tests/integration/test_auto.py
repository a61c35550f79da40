"""places/flavour = auto (the default): a key made today, whose project has only the
Places API (New), gets places on its first WHATSAT; the node switches once, logs it
once, and asks the New API from then on. Other refusals do not switch."""

import json
import os
import sys
import threading
import time

from herdlib import iamat, whatsat

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import places_standin  # noqa: E402

NEW_PATH = "/v1/places:searchNearby"
LEGACY_PATH = "/maps/api/place/nearbysearch/json"
UCLA = "+34.068930-118.445127"
SWITCH = b" places legacy Places API refused for this key: switching to Places API (New)"


def now_str():
    return f"{time.time():.9f}"


def final_log(herd):
    """Stop the node, check it stopped cleanly, and return its log."""
    codes = herd.stop()
    assert codes and all(c == 0 for c in codes["Hill"]), codes
    return herd.log("Hill")


def test_auto_switches_for_a_new_only_key(make_herd, standin):
    """Default config, a new-only key: every WHATSAT, the first included, gets places in
    the legacy shape; one legacy request in all, then only the New API; one log line."""
    standin.mode("new-only")
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url).start()
    at = iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    for n, (radius, bound) in enumerate([(10, 5), (10, 3), (1, 5), (50, 1), (10, 5)]):
        first, body = whatsat(herd.port("Hill"), "kiwi", radius, bound)
        assert first == at
        doc = json.loads(body)
        assert list(doc) == ["html_attributions", "results", "status"], (n, doc)
        assert doc["status"] == "OK", (n, doc)
        assert len(doc["results"]) == min(bound, radius * 2), n
        #  What the New API gives, translated: no legacy-only fields
        assert all("place_id" in r and "reference" not in r for r in doc["results"]), n
    stats = standin.stats()
    assert stats["requests_by_path"] == {LEGACY_PATH: 1, NEW_PATH: 5}, stats
    assert stats["last_headers"]["X-Goog-Api-Key"] == "<redacted>"
    log = final_log(herd)
    assert log.count(SWITCH) == 1, log.decode(errors="replace")[-3000:]
    assert b"-> ask the Places API (New)" in log
    assert b"flavour=auto" in log and b"url_new=" + standin.base.encode() + NEW_PATH.encode() in log


def test_auto_switches_once_with_requests_in_flight(make_herd, standin):
    """Several WHATSATs at distinct places refused at once: each is asked again of the New
    API and answered with places; the switch is logged once."""
    standin.mode("new-only", latency_ms=300)
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url).start()
    port = herd.port("Hill")
    clients = [f"c{i}" for i in range(6)]
    for i, name in enumerate(clients):
        iamat(port, name, "+34.%06d-118.445127" % (68930 + 1000 * i), now_str())
    answers = {}

    def ask(name):
        answers[name] = whatsat(port, name, 10, 4)

    threads = [threading.Thread(target=ask, args=(name,)) for name in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == clients
    for name, (first, body) in answers.items():
        doc = json.loads(body)
        assert doc["status"] == "OK" and len(doc["results"]) == 4, (name, doc)
    by_path = standin.stats()["requests_by_path"]
    assert by_path[NEW_PATH] == len(clients)
    assert 1 <= by_path[LEGACY_PATH] <= len(clients)
    assert final_log(herd).count(SWITCH) == 1


def test_auto_keeps_legacy_on_other_denials(make_herd, standin):
    """An invalid key's REQUEST_DENIED is Google's answer, not a reason to switch."""
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     places_extra="retries = 0").start()
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    standin.mode("invalid_key")
    for _ in range(3):
        first, body = whatsat(herd.port("Hill"), "kiwi", 10, 5)
        doc = json.loads(body)
        assert doc == {"error_message": places_standin.MSG_INVALID_KEY, "html_attributions": [],
                       "results": [], "status": "REQUEST_DENIED"}
    standin.mode("ok")
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 5)
    assert json.loads(body)["status"] == "OK"
    assert standin.stats()["requests_by_path"] == {LEGACY_PATH: 4}
    assert SWITCH not in final_log(herd)


def test_legacy_flavour_never_switches(make_herd, standin):
    """flavour = legacy, said in the file: the legacy refusal goes back to the client."""
    standin.mode("new-only")
    herd = make_herd(names=["Hill"], edges=[], places_url=standin.url,
                     places_extra="flavour = legacy\nretries = 0").start()
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    for _ in range(2):
        first, body = whatsat(herd.port("Hill"), "kiwi", 10, 5)
        doc = json.loads(body)
        assert doc["status"] == "REQUEST_DENIED"
        assert doc["error_message"] == places_standin.MSG_LEGACY
    assert standin.stats()["requests_by_path"] == {LEGACY_PATH: 2}
    log = final_log(herd)
    assert SWITCH not in log and b"flavour=legacy" in log
