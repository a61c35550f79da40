"""Places on real herds: the Places API (New) translation, the key, failures, retries,
coalescing and the cache, against the stand-in, for both flavours and both process modes."""

import json
import os
import sys
import threading
import time
import urllib.request

import pytest

from herdlib import SLOW, Client, iamat, whatsat

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import places_standin  # noqa: E402  (the stand-in's own data and printer)

NEW_PATH = "/v1/places:searchNearby"
LEGACY_PATH = "/maps/api/place/nearbysearch/json"
UCLA = "+34.068930-118.445127"
UCLA_LAT, UCLA_LNG = 34.06893, -118.445127
#  Legacy fields the New API has no equivalent for
NO_EQUIVALENT = ("icon", "reference", "scope")
#  Legacy fields filled only with enterprise_fields = true (Enterprise SKU)
ENTERPRISE = ("opening_hours", "price_level", "rating", "user_ratings_total")


def now_str():
    return f"{time.time():.9f}"


@pytest.fixture(params=["legacy", "new"])
def flavour(request):
    """Each test here runs against the legacy API and against the Places API (New)."""
    return request.param


def places_herd(make_herd, standin, flavour, extra="", **kwargs):
    """A one-node herd (Hill) whose places talk to the stand-in with the given flavour."""
    url = standin.base + (NEW_PATH if flavour == "new" else LEGACY_PATH)
    lines = [f"flavour = {flavour}"] + [l.strip() for l in extra.splitlines() if l.strip()]
    return make_herd(names=["Hill"], edges=[], places_url=url,
                     places_extra="\n".join(lines), **kwargs).start()


def legacy_results(standin, radius_m):
    """The stand-in's legacy results for UCLA: what the translation must reproduce."""
    url = (f"{standin.base}{LEGACY_PATH}?location={UCLA_LAT},{UCLA_LNG}"
           f"&radius={radius_m}&key=k")
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())["results"]


def translated(result, enterprise):
    """What a legacy result looks like after a trip through the New API and the herd."""
    out = {k: v for k, v in result.items()
           if k not in NO_EQUIVALENT and (enterprise or k not in ENTERPRISE)}
    out["photos"] = [dict(p, photo_reference="places/%s/photos/%s"
                          % (result["place_id"], p["photo_reference"]))
                     for p in result["photos"]]
    return out


def final_log(herd):
    """Stop the node (which writes out its log), check it stopped cleanly (exit 0: under
    the sanitizers, no leak either), and return the log."""
    codes = herd.stop()
    assert codes and all(c == 0 for c in codes["Hill"]), codes
    return herd.log("Hill")


# ------------------------------------------------------------ Places API (New)

@pytest.mark.parametrize("enterprise", [False, True])
def test_new_api_translation(make_herd, standin, enterprise):
    """Legacy shape in Google's layout, min(bound, available) results, the mapped fields."""
    herd = places_herd(make_herd, standin, "new",
                       "enterprise_fields = %s" % ("true" if enterprise else "false"))
    at = iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    for radius, bound, expect in [(10, 5, 5), (10, 20, 20), (1, 5, 2), (0.2, 5, 0), (50, 1, 1)]:
        first, body = whatsat(herd.port("Hill"), "kiwi", radius, bound)
        assert first == at
        assert b"\n\n" not in body and not body.endswith(b"\n")
        doc = json.loads(body)
        assert list(doc) == ["html_attributions", "results", "status"]
        assert doc["html_attributions"] == []
        assert doc["status"] == ("OK" if expect else "ZERO_RESULTS")
        assert len(doc["results"]) == expect
        #  The same places as the legacy API, field for field, byte for byte
        want = [translated(r, enterprise) for r in legacy_results(standin, radius * 1000)[:bound]]
        assert doc["results"] == want
        layout = places_standin.g_dumps({"html_attributions": [], "results": want,
                                         "status": doc["status"]})
        assert body == layout.encode()
        for r in doc["results"]:
            for field in ("place_id", "name", "geometry", "vicinity", "types", "business_status",
                          "plus_code", "icon_mask_base_uri", "icon_background_color", "photos"):
                assert field in r, field
            assert all(field in r for field in ("rating", "user_ratings_total",
                                                "opening_hours")) == enterprise
        #  What went out: a POST with maxResultCount = bound and the radius in metres
        stats = standin.stats()
        assert stats["last_body"] == {
            "maxResultCount": bound,
            "locationRestriction": {"circle": {
                "center": {"latitude": UCLA_LAT, "longitude": UCLA_LNG},
                "radius": radius * 1000}}}
    stats = standin.stats()
    assert stats["requests_by_path"] == {NEW_PATH: 5, LEGACY_PATH: 5}     # 5 of them ours
    assert stats["last_sku"] == ("Enterprise" if enterprise else "Pro")
    mask = stats["last_field_mask"]
    assert " " not in mask and mask.startswith("places.id,places.displayName,")
    assert ("places.rating" in mask) == enterprise
    assert b"fields=%s" % (b"enterprise" if enterprise else b"pro") in final_log(herd)


def test_key_only_in_header_never_logged(make_herd, standin):
    """The key goes in X-Goog-Api-Key, never in the URL, never in a log or a reply."""
    key = "AIza-sekret-NEW-key-42"
    herd = places_herd(make_herd, standin, "new", "retries = 0", key=key)
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 3)
    assert len(json.loads(body)["results"]) == 3
    stats = standin.stats()
    assert stats["keys_seen"] == [key]
    assert stats["last_query"] == {"key_present": False}
    assert stats["last_headers"]["X-Goog-Api-Key"] == "<redacted>"
    assert stats["last_headers"]["Content-Type"] == "application/json"
    for failure in ("request_denied", "http500", "malformed"):
        standin.mode(failure)
        first, body = whatsat(herd.port("Hill"), "kiwi", 10, 3)
        assert key.encode() not in body and json.loads(body)["status"] != "OK"
    herd.stop()
    log = herd.log("Hill")
    assert b" places fetch=" in log and b" places req=" in log
    assert key.encode() not in log
    assert b"sekret" not in log


def test_missing_key_new(make_herd, standin):
    """No key at all: Google's 403 as REQUEST_DENIED with its message; not retried."""
    herd = places_herd(make_herd, standin, "new", key=None)
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 3)
    doc = json.loads(body)
    assert doc == {"error_message": places_standin.MSG_NEW_NO_KEY, "html_attributions": [],
                   "results": [], "status": "REQUEST_DENIED"}
    assert standin.stats()["requests"] == 1
    assert "X-Goog-Api-Key" not in standin.stats()["last_headers"]


# ------------------------------------------------------------ failures

HERD_TIMEOUT = "herd: Places request timed out after 500 ms"
HERD_INVALID_JSON = "herd: Places API sent invalid JSON"
#  mode -> flavour -> (status, error_message or None); None status means an OK answer
FAILURES = {
    "request_denied": {"legacy": ("REQUEST_DENIED", places_standin.MSG_LEGACY),
                       "new": ("REQUEST_DENIED", places_standin.MSG_NEW_DISABLED)},
    "over_query_limit": {"legacy": ("OVER_QUERY_LIMIT", places_standin.MSG_QUOTA),
                         "new": ("OVER_QUERY_LIMIT", places_standin.MSG_NEW_QUOTA)},
    "invalid_request": {"legacy": ("INVALID_REQUEST", None),
                        "new": ("INVALID_REQUEST", places_standin.MSG_NEW_INVALID)},
    "http500": {"legacy": ("UNKNOWN_ERROR", "herd: Places API answered HTTP 500"),
                "new": ("UNKNOWN_ERROR", places_standin.MSG_NEW_INTERNAL)},
    "malformed": {"legacy": ("UNKNOWN_ERROR", HERD_INVALID_JSON),
                  "new": ("UNKNOWN_ERROR", HERD_INVALID_JSON)},
    "truncated": {"legacy": ("UNKNOWN_ERROR", HERD_INVALID_JSON),
                  "new": ("UNKNOWN_ERROR", HERD_INVALID_JSON)},
    "hang": {"legacy": ("UNKNOWN_ERROR", HERD_TIMEOUT), "new": ("UNKNOWN_ERROR", HERD_TIMEOUT)},
    "zero": {"legacy": ("ZERO_RESULTS", None), "new": ("ZERO_RESULTS", None)},
    "blanklines": {"legacy": ("OK", None), "new": ("OK", None)},
}


def test_failure_modes(make_herd, standin, flavour):
    """Every stand-in failure gets the documented reply, and the node keeps serving."""
    herd = places_herd(make_herd, standin, flavour, "timeout_ms = 500\nretries = 0")
    at = iamat(herd.port("Hill"), "victim", UCLA, now_str())
    for mode, answers in FAILURES.items():
        status, message = answers[flavour]
        standin.mode(mode)
        first, body = whatsat(herd.port("Hill"), "victim", 10, 5)
        assert first == at, mode
        assert b"\n\n" not in body, mode
        doc = json.loads(body)
        assert doc["status"] == status, (mode, doc)
        assert doc["html_attributions"] == []
        if status in ("OK", "ZERO_RESULTS"):
            assert len(doc["results"]) == (5 if status == "OK" else 0), mode
            assert "error_message" not in doc
        else:
            assert doc["results"] == [], mode
            assert doc.get("error_message") == message, (mode, doc)
        #  The node keeps serving
        standin.mode("ok")
        first, body = whatsat(herd.port("Hill"), "victim", 10, 5)
        assert first == at and len(json.loads(body)["results"]) == 5, mode
    assert b"status=REQUEST_DENIED" in final_log(herd)


# ------------------------------------------------------------ retries

def test_retry_flaky_500_then_success(make_herd, standin, flavour):
    """HTTP 500s are retried with backoff inside the deadline, and the answer is good."""
    failures = 2
    herd = places_herd(make_herd, standin, flavour, "timeout_ms = 4000")
    at = iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    standin.control(f"/_standin/mode?mode=flaky500&failures={failures}")
    started = time.monotonic()
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 4)
    took = time.monotonic() - started
    assert first == at
    doc = json.loads(body)
    assert doc["status"] == "OK" and len(doc["results"]) == 4
    assert standin.stats()["requests"] == failures + 1
    #  Backoff: at least 0.25 s before the first retry, all within timeout_ms
    assert 0.25 * failures <= took < 4.0 * SLOW, took
    log = final_log(herd)
    assert log.count(b"-> retry in ") == failures
    assert b" attempts=%d " % (failures + 1) in log


def test_retries_give_up_at_the_deadline(make_herd, standin, flavour):
    """A server that keeps failing: retried while time is left, answered by the deadline."""
    herd = places_herd(make_herd, standin, flavour, "timeout_ms = 600\nretries = 10")
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    standin.mode("http500")
    started = time.monotonic()
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 4)
    took = time.monotonic() - started
    assert json.loads(body)["status"] == "UNKNOWN_ERROR"
    assert took < 1.0 * SLOW + 0.5, took
    assert 1 <= standin.stats()["requests"] <= 2
    assert b"would not end before the deadline" in final_log(herd)


def test_4xx_never_retried(make_herd, standin, flavour):
    """REQUEST_DENIED / INVALID_REQUEST (New: 403 / 400) are final: one request only;
    OVER_QUERY_LIMIT (New: 429 RESOURCE_EXHAUSTED) is retried, then answered as such."""
    herd = places_herd(make_herd, standin, flavour, "timeout_ms = 4000\nretries = 1")
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    for mode, status, requests in [("request_denied", "REQUEST_DENIED", 1),
                                   ("invalid_request", "INVALID_REQUEST", 1),
                                   ("over_query_limit", "OVER_QUERY_LIMIT", 2)]:
        standin.control("/_standin/reset")
        standin.mode(mode)
        first, body = whatsat(herd.port("Hill"), "kiwi", 10, 4)
        assert json.loads(body)["status"] == status
        assert standin.stats()["requests"] == requests, mode
    log = final_log(herd)
    assert log.count(b"-> answered (not retryable)") == 2
    assert log.count(b"-> retry in ") == 1


# ------------------------------------------------------------ coalescing and cache

def test_identical_whatsats_share_one_request(make_herd, standin, flavour):
    """N identical WHATSATs in flight: the stand-in sees one request, all N get the answer."""
    standin.mode(latency_ms=300)
    herd = places_herd(make_herd, standin, flavour)
    at = iamat(herd.port("Hill"), "crowd", UCLA, now_str())
    count = 12
    clients = [Client(herd.port("Hill")) for _ in range(count)]
    gate = threading.Barrier(count)
    answers = [None] * count

    def ask(i):
        gate.wait()
        clients[i].send("WHATSAT crowd 10 7\n")
        answers[i] = clients[i].read_whatsat()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10 * SLOW)
    for c in clients:
        c.close()
    assert standin.stats()["requests"] == 1
    assert all(a is not None and a[0] == at for a in answers)
    bodies = {a[1] for a in answers}
    assert len(bodies) == 1
    doc = json.loads(bodies.pop())
    assert doc["status"] == "OK" and len(doc["results"]) == 7
    #  Another bound is another query; without a cache, a repeat asks again
    first, body = whatsat(herd.port("Hill"), "crowd", 10, 2)
    assert len(json.loads(body)["results"]) == 2
    assert standin.stats()["requests"] == 2
    first, body = whatsat(herd.port("Hill"), "crowd", 10, 2)
    assert standin.stats()["requests"] == 3
    log = final_log(herd)
    assert log.count(b" places req=") == count + 2
    assert log.count(b" shared url=") == count - 1
    assert b"cache hit" not in log


def test_cache_hit(make_herd, standin, flavour):
    """With cache_ttl_ms, a repeated WHATSAT is answered from the cache, and the log says so."""
    herd = places_herd(make_herd, standin, flavour,
                       "cache_ttl_ms = 60000\ncache_max = 100\nretries = 0")
    iamat(herd.port("Hill"), "kiwi", UCLA, now_str())
    first, body = whatsat(herd.port("Hill"), "kiwi", 10, 3)
    assert standin.stats()["requests"] == 1
    again = whatsat(herd.port("Hill"), "kiwi", 10, 3)
    assert again == (first, body)
    assert standin.stats()["requests"] == 1
    #  Failures are not cached
    standin.mode("http500")
    assert json.loads(whatsat(herd.port("Hill"), "kiwi", 10, 4)[1])["status"] == "UNKNOWN_ERROR"
    standin.mode("ok")
    assert json.loads(whatsat(herd.port("Hill"), "kiwi", 10, 4)[1])["status"] == "OK"
    assert standin.stats()["requests"] == 3
    assert final_log(herd).count(b" cache hit ") == 1
