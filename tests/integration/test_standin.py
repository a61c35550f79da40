"""Tests of the stand-in Google Places server (tests/places_standin.py), run as a real subprocess."""

import http.client
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

STANDIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "places_standin.py")
NEARBY = "/maps/api/place/nearbysearch/json"
NEW = "/v1/places:searchNearby"
UCLA = "34.068930,-118.445127"
EMPTY_STATS = {"requests": 0, "requests_by_path": {}, "last_query": None, "last_field_mask": None,
               "last_sku": None, "last_headers": None, "last_body": None, "keys_seen": [],
               "mode": "ok", "latency_ms": 0, "failures_left": 0}
PRO_MASK = ("places.id,places.displayName,places.location,places.viewport,places.types,"
            "places.businessStatus,places.shortFormattedAddress,places.formattedAddress,"
            "places.plusCode,places.iconMaskBaseUri,places.iconBackgroundColor,places.photos")
START_TIMEOUT_S = 10.0
OLC_RE = re.compile(r"^[23456789CFGHJMPQRVWX]{8}\+[23456789CFGHJMPQRVWX]{2}$")


class Standin:
    """One stand-in server process with its port, stdout pipe and stderr file."""

    def __init__(self, folder, *extra_args):
        """Start the server on --port 0 and wait (bounded) for its port file and banner."""
        self.port_file = os.path.join(folder, "port")
        self.stderr_path = os.path.join(folder, "stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, STANDIN, "--port", "0", "--port-file", self.port_file, *extra_args],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.port = self.wait_for_port()
        self.banner = self.read_line(time.monotonic() + START_TIMEOUT_S)

    def wait_for_port(self):
        """Poll for the port file for at most START_TIMEOUT_S; fail early if the server died."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    return int(f.read())
            if self.proc.poll() is not None:
                pytest.fail("standin exited with %s: %s" % (self.proc.returncode, self.read_stderr()))
            time.sleep(0.02)
        pytest.fail("standin wrote no port file within %.0f s" % START_TIMEOUT_S)

    def read_line(self, deadline):
        """Read one stdout line, waiting no later than deadline."""
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, "standin printed nothing on stdout"
        return self.proc.stdout.readline()

    def read_stderr(self):
        """Everything the server wrote on stderr so far."""
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        """Send sig, wait up to 5 s (then kill); return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def url(self, path):
        """Absolute URL of a path on this server."""
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, timeout=5.0):
        """GET path; return (HTTP status, headers, body bytes), HTTP errors included."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def control(self, path):
        """GET a /_standin/ endpoint and decode its JSON answer."""
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)

    def nearby(self, location=UCLA, radius=10000, key="test-key", timeout=5.0):
        """GET a Nearby Search; None leaves a parameter out. Returns (status, headers, body)."""
        params = []
        if location is not None:
            params.append("location=" + location)
        if radius is not None:
            params.append("radius=%s" % radius)
        if key is not None:
            params.append("key=" + key)
        return self.get(NEARBY + "?" + "&".join(params), timeout=timeout)

    def search(self, body=None, key="test-key", mask=PRO_MASK, count=None, radius=10000.0,
               lat=34.06893, lng=-118.445127, path=NEW, headers=None, timeout=5.0):
        """POST a Nearby Search (New); None leaves a header out. Returns (status, headers, body)."""
        if body is None:
            body = {"locationRestriction": {"circle": {
                "center": {"latitude": lat, "longitude": lng}, "radius": radius}}}
            if count is not None:
                body["maxResultCount"] = count
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url(path), data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("X-Goog-Api-Key", key)
        if mask is not None:
            request.add_header("X-Goog-FieldMask", mask)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The module's shared server; always terminated at the end."""
    server = Standin(str(tmp_path_factory.mktemp("standin")))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    """Reset the shared server (mode ok, latency 0, counters zero) before each test using it."""
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").control("/_standin/reset")


def places_json(body):
    """Decode a Places body, checking every object's keys are in alphabetical order."""
    def sorted_object(pairs):
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys), keys
        return dict(pairs)
    return json.loads(body, object_pairs_hook=sorted_object)


def metres_between(lat1, lng1, lat2, lng2):
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371000 * math.asin(math.sqrt(a))


# ------------------------------------------------------------------ start-up

def test_banner_and_port_file(standin):
    """Prints exactly the banner line and writes just the port (no temp file left)."""
    assert standin.banner == "standin listening on http://127.0.0.1:%d\n" % standin.port
    with open(standin.port_file) as f:
        assert f.read() == "%d\n" % standin.port
    assert sorted(os.listdir(os.path.dirname(standin.port_file))) == ["port", "stderr"]


# ------------------------------------------------------------------ results

@pytest.mark.parametrize("radius, count", [
    (50000, 20), (10000, 20), (9999, 19), (1500.5, 3), (1000, 2), (999, 1), (500, 1),
    (499, 0), (300, 0), (0, 0)])
def test_result_count_follows_radius(standin, radius, count):
    """available = min(20, floor(radius / 500)); 0 is ZERO_RESULTS; 20 carries next_page_token."""
    status, headers, body = standin.nearby(radius=radius)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    doc = places_json(body)
    assert len(doc["results"]) == count
    assert doc["status"] == ("OK" if count else "ZERO_RESULTS")
    assert ("next_page_token" in doc) == (count == 20)
    assert "error_message" not in doc


def test_same_query_same_bytes(standin):
    """Answers are deterministic and the smaller radius gives a prefix of the larger."""
    first = standin.nearby()[2]
    assert standin.nearby()[2] == first
    assert standin.nearby(location=UCLA.replace(",", "%2C"))[2] == first
    assert standin.nearby(location="34.06893,-118.445127")[2] == first   # same number, same answer
    assert standin.nearby(key="another-key")[2] == first
    assert places_json(standin.nearby(radius=1000)[2])["results"] == places_json(first)["results"][:2]
    other = places_json(standin.nearby(location="-33.8670522,151.1957362")[2])
    assert {r["place_id"] for r in other["results"]}.isdisjoint(
        {r["place_id"] for r in places_json(first)["results"]})


def test_google_layout(standin):
    """3-space indent, " : ", sorted keys, inline short lists, \\u003c escapes, ends "}\\n"."""
    body = standin.nearby()[2].decode("utf-8")
    assert body.startswith('{\n   "html_attributions" : [],\n   "next_page_token" : "')
    assert body.endswith('\n   "status" : "OK"\n}\n') and not body.endswith("\n\n")
    assert "\n\n" not in body and "\t" not in body and '":' not in body
    for line in body.split("\n")[:-1]:
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 3 == 0, repr(line)
        if '" : ' in line:
            assert re.match(r'^(   )+"[a-z_]+" : ', line), repr(line)
    assert '\n      "types" : [ "' not in body                          # results sit at 6 spaces
    assert re.search(r'\n         "types" : \[ "[a-z_]+"(, "[a-z_]+")* \],\n', body)
    assert '\n         "types" : [\n            "travel_agency",\n' in body   # too long for one line
    assert '\n         "opening_hours" : {\n            "open_now" : ' in body
    assert '"html_attributions" : [\n                  "\\u003ca href=\\"https://' in body
    assert "\\u003c/a\\u003e" in body and "<" not in body and ">" not in body
    assert re.search(r'\n         "rating" : \d,\n', body)                 # whole rating: 4
    assert re.search(r'\n         "rating" : \d\.\d,\n', body)             # and 4.6
    doc = places_json(body)
    assert list(doc) == ["html_attributions", "next_page_token", "results", "status"]


def test_result_fields(standin):
    """Every result carries the legacy Place fields, near the query point and inside the radius."""
    lat, lng = map(float, UCLA.split(","))
    for radius in (1000, 10000):
        results = places_json(standin.nearby(radius=radius)[2])["results"]
        assert len({r["place_id"] for r in results}) == len(results)
        for r in results:
            assert len(r["place_id"]) == 27 and r["place_id"].startswith("ChIJ")
            assert r["reference"] == r["place_id"]
            assert r["scope"] == "GOOGLE" and r["business_status"] == "OPERATIONAL"
            assert r["name"] and r["vicinity"] and r["types"]
            assert r["icon"].startswith("https://maps.gstatic.com/")
            assert re.match(r"^#[0-9A-F]{6}$", r["icon_background_color"])
            assert r["icon_mask_base_uri"].startswith("https://maps.gstatic.com/")
            assert isinstance(r["opening_hours"]["open_now"], bool)
            assert 1 <= r["rating"] <= 5 and r["user_ratings_total"] > 0
            [photo] = r["photos"]
            assert photo["height"] > 0 and photo["width"] > 0 and len(photo["photo_reference"]) > 100
            [credit] = photo["html_attributions"]
            assert re.match(r'^<a href="https://maps\.google\.com/maps/contrib/\d+">[^<]+</a>$', credit)
            code = r["plus_code"]["global_code"]
            assert OLC_RE.match(code)
            assert r["plus_code"]["compound_code"].startswith(code[4:] + " ")
            where = r["geometry"]["location"]
            assert metres_between(lat, lng, where["lat"], where["lng"]) <= radius
            view = r["geometry"]["viewport"]
            assert view["southwest"]["lat"] < where["lat"] < view["northeast"]["lat"]
            assert view["southwest"]["lng"] < where["lng"] < view["northeast"]["lng"]


# ------------------------------------------------------------ bad requests

INVALID_BODY = (b'{\n   "html_attributions" : [],\n   "results" : [],\n'
                b'   "status" : "INVALID_REQUEST"\n}\n')


@pytest.mark.parametrize("location, radius", [
    (None, 1000), ("", 1000), ("abc", 1000), ("34.1", 1000), ("1,2,3", 1000), ("91,0", 1000),
    ("0,181", 1000), ("nan,0", 1000), (UCLA, None), (UCLA, ""), (UCLA, "-5"), (UCLA, "x"),
    (UCLA, "inf"), (UCLA, "1_000")])
def test_invalid_request(standin, location, radius):
    """Missing or bad location/radius → HTTP 200 INVALID_REQUEST, exactly Google's bytes."""
    assert standin.nearby(location=location, radius=radius)[:3:2] == (200, INVALID_BODY)


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key(standin, key):
    """No key → REQUEST_DENIED with Google's message, checked before the other parameters."""
    for location in (UCLA, None):
        status, _, body = standin.nearby(location=location, key=key)
        doc = places_json(body)
        assert status == 200 and doc["status"] == "REQUEST_DENIED" and doc["results"] == []
        assert doc["error_message"] == ("You must use an API key to authenticate each request "
                                        "to Google Maps Platform APIs.")


def test_unknown_path_is_404_json(standin):
    """Unknown paths answer 404 with a JSON body and are not counted."""
    for path in ("/", "/maps/api/place/nearbysearch/xml", "/_standin/nope"):
        status, headers, body = standin.get(path)
        assert status == 404 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["path"] == path
    assert standin.control("/_standin/stats")["requests"] == 0


# ------------------------------------------------------------ failure modes

def set_mode(standin, mode, latency_ms=None):
    """Switch the server's mode (and latency) through the control endpoint."""
    query = "mode=" + mode + ("" if latency_ms is None else "&latency_ms=%d" % latency_ms)
    return standin.control("/_standin/mode?" + query)


def test_mode_zero(standin):
    """zero: valid queries get ZERO_RESULTS."""
    set_mode(standin, "zero")
    doc = places_json(standin.nearby()[2])
    assert doc == {"html_attributions": [], "results": [], "status": "ZERO_RESULTS"}


def test_mode_request_denied(standin):
    """request_denied: HTTP 200 with the legacy-API-not-enabled message."""
    set_mode(standin, "request_denied")
    status, _, body = standin.nearby()
    doc = places_json(body)
    assert status == 200 and doc["status"] == "REQUEST_DENIED" and doc["results"] == []
    assert doc["error_message"].startswith("You're calling a legacy API, which is not enabled")
    assert body.startswith(b'{\n   "error_message" : "You\'re calling') and body.endswith(b"}\n")


def test_mode_over_query_limit(standin):
    """over_query_limit: HTTP 200, OVER_QUERY_LIMIT with the quota message."""
    set_mode(standin, "over_query_limit")
    status, _, body = standin.nearby()
    assert status == 200 and places_json(body) == {
        "error_message": "You have exceeded your daily request quota for this API.",
        "html_attributions": [], "results": [], "status": "OVER_QUERY_LIMIT"}


def test_mode_http500(standin):
    """http500: HTTP 500 with a small HTML body."""
    set_mode(standin, "http500")
    status, headers, body = standin.nearby()
    assert status == 500 and headers["Content-Type"].startswith("text/html")
    assert b"<html" in body and len(body) < 1000


def test_mode_malformed(standin):
    """malformed: HTTP 200 with a body that is not JSON."""
    set_mode(standin, "malformed")
    status, _, body = standin.nearby()
    assert status == 200 and body == b'{"results" : [ {"name" : '
    with pytest.raises(ValueError):
        json.loads(body)


def test_mode_truncated(standin):
    """truncated: the first half of the normal body, with a Content-Length that fits it."""
    whole = standin.nearby()[2]
    set_mode(standin, "truncated")
    status, headers, body = standin.nearby()
    assert status == 200 and body == whole[:len(whole) // 2]
    assert int(headers["Content-Length"]) == len(body)
    with pytest.raises(ValueError):
        json.loads(body)


def test_mode_blanklines(standin):
    """blanklines: "\\n\\n" between results; collapsing newline runs gives the normal body back."""
    whole = standin.nearby()[2]
    set_mode(standin, "blanklines")
    body = standin.nearby()[2]
    assert body.count(b"      },\n\n\n      {\n") == 19
    assert re.sub(rb"\n+", b"\n", body) == whole
    assert json.loads(body) == json.loads(whole)


def test_mode_hang_times_out_without_blocking_others(standin):
    """hang: the request gets no answer, while other requests are still served promptly."""
    set_mode(standin, "hang")
    outcome = {}

    def hanging_request():
        """Issue a Places request with a 1 s time-out and note what happened."""
        started = time.monotonic()
        try:
            outcome["answer"] = standin.nearby(timeout=1.0)
        except (TimeoutError, urllib.error.URLError) as error:
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=hanging_request)
    thread.start()
    deadline = time.monotonic() + 5
    while standin.control("/_standin/stats")["requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    set_mode(standin, "ok")                          # the held request keeps hanging...
    started = time.monotonic()
    assert places_json(standin.nearby()[2])["status"] == "OK"   # ...others are answered
    assert time.monotonic() - started < 0.5
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "answer" not in outcome, outcome
    error = outcome["error"]
    assert isinstance(getattr(error, "reason", error), TimeoutError), error
    assert 0.9 <= outcome["seconds"] < 3


# ------------------------------------------------------------ latency

def test_latency_overlaps(standin):
    """20 concurrent requests with 300 ms latency each finish together, well under 1.5 s."""
    set_mode(standin, "ok", latency_ms=300)
    gate = threading.Barrier(20)
    took, statuses = [], []

    def one_request():
        """Wait for the others, then time one Places request."""
        gate.wait()
        started = time.monotonic()
        statuses.append(places_json(standin.nearby(radius=1000)[2])["status"])
        took.append(time.monotonic() - started)

    threads = [threading.Thread(target=one_request) for _ in range(20)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    elapsed = time.monotonic() - started
    assert statuses == ["OK"] * 20
    assert min(took) >= 0.29, took
    assert elapsed < 1.5, elapsed
    assert standin.control("/_standin/stats")["requests"] == 20


# ------------------------------------------------------------ Places API (New)

NO_MASK = ("FieldMask is a required parameter. See "
           "https://cloud.google.com/apis/docs/system-parameters#definitions.")


def new_error_of(body):
    """The error object of a google.rpc.Status answer (the only top-level member)."""
    doc = json.loads(body)
    assert list(doc) == ["error"], doc
    return doc["error"]


@pytest.mark.parametrize("radius, count, expect", [
    (10000, None, 20), (10000, 5, 5), (50000, 20, 20), (1000, 5, 2), (1000, None, 2),
    (999, 1, 1), (499, 5, 0), (0.5, 20, 0)])
def test_new_count_follows_radius_and_max(standin, radius, count, expect):
    """min(available, maxResultCount) places; none at all is {} (no places key)."""
    status, headers, body = standin.search(radius=radius, count=count)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    if expect == 0:
        assert body == b"{}\n"
    else:
        assert list(doc) == ["places"] and len(doc["places"]) == expect
    assert body.startswith(b"{\n  ") or body == b"{}\n"


def test_new_same_places_as_legacy(standin):
    """The New places are the legacy results, in the same order, under New names."""
    legacy = places_json(standin.nearby(radius=3000)[2])["results"]
    places = json.loads(standin.search(radius=3000, mask="*")[2])["places"]
    assert len(places) == len(legacy) == 6
    for place, result in zip(places, legacy):
        assert place["id"] == result["place_id"] and place["name"] == "places/" + place["id"]
        assert place["displayName"] == {"text": result["name"], "languageCode": "en"}
        assert place["location"] == {"latitude": result["geometry"]["location"]["lat"],
                                     "longitude": result["geometry"]["location"]["lng"]}
        view = result["geometry"]["viewport"]
        assert place["viewport"]["low"]["latitude"] == view["southwest"]["lat"]
        assert place["viewport"]["high"]["longitude"] == view["northeast"]["lng"]
        assert place["shortFormattedAddress"] == result["vicinity"]
        assert place["formattedAddress"].startswith(result["vicinity"] + ", ")
        assert place["types"] == result["types"]
        assert place["businessStatus"] == result["business_status"]
        assert place["plusCode"] == {"globalCode": result["plus_code"]["global_code"],
                                     "compoundCode": result["plus_code"]["compound_code"]}
        assert place["iconMaskBaseUri"] == result["icon_mask_base_uri"]
        assert place["iconBackgroundColor"] == result["icon_background_color"]
        assert place["rating"] == result["rating"]
        assert place["userRatingCount"] == result["user_ratings_total"]
        assert place["currentOpeningHours"]["openNow"] == result["opening_hours"]["open_now"]
        levels = ["PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE",
                  "PRICE_LEVEL_EXPENSIVE", "PRICE_LEVEL_VERY_EXPENSIVE"]
        assert place.get("priceLevel") == (levels[result["price_level"]]
                                           if "price_level" in result else None)
        [photo], [legacy_photo] = place["photos"], result["photos"]
        assert photo["name"] == "places/%s/photos/%s" % (place["id"],
                                                         legacy_photo["photo_reference"])
        assert (photo["widthPx"], photo["heightPx"]) == (legacy_photo["width"],
                                                         legacy_photo["height"])
        [author] = photo["authorAttributions"]
        assert legacy_photo["html_attributions"] == [
            '<a href="%s">%s</a>' % (author["uri"], author["displayName"])]


def test_new_only_masked_fields(standin):
    """Only the fields the mask names come back; a path may name a subfield; SKU in stats."""
    for mask, keys, sku in [
            ("places.id,places.displayName", {"id", "displayName"}, "Pro"),
            ("places.id,places.rating", {"id", "rating"}, "Enterprise"),
            ("places.reviews,places.id", {"id"}, "Enterprise + Atmosphere"),
            (PRO_MASK, {m.split(".")[1] for m in PRO_MASK.split(",")}, "Pro")]:
        places = json.loads(standin.search(mask=mask)[2])["places"]
        assert all(set(p) == keys for p in places), (mask, places[0])
        assert standin.control("/_standin/stats")["last_sku"] == sku
    places = json.loads(standin.search(mask="places.displayName.text")[2])["places"]
    assert all(list(p) == ["displayName"] and list(p["displayName"]) == ["text"] for p in places)
    #  The mask may come as a URL parameter too
    status, _, body = standin.search(mask=None, path=NEW + "?$fields=places.id")
    assert status == 200 and all(list(p) == ["id"] for p in json.loads(body)["places"])


def test_new_missing_mask_or_key(standin):
    """No field mask: 400 INVALID_ARGUMENT; no key: 403 PERMISSION_DENIED; key as ?key= works."""
    status, _, body = standin.search(mask=None)
    assert status == 400
    assert new_error_of(body) == {"code": 400, "message": NO_MASK, "status": "INVALID_ARGUMENT"}
    status, _, body = standin.search(mask="")
    assert status == 400 and new_error_of(body)["message"] == NO_MASK
    status, _, body = standin.search(key=None)
    assert status == 403 and new_error_of(body) == {
        "code": 403, "message": "The request is missing a valid API key.",
        "status": "PERMISSION_DENIED"}
    status, _, body = standin.search(key=None, path=NEW + "?key=url-key")
    assert status == 200 and len(json.loads(body)["places"]) == 20
    stats = standin.control("/_standin/stats")
    assert stats["last_query"] == {"key_present": True} and "url-key" in stats["keys_seen"]


@pytest.mark.parametrize("mask, message", [
    ("places.bogus", "Cannot find matching fields for path 'places.bogus'."),
    ("id", "Cannot find matching fields for path 'id'."),
    ("places.id, places.types", "Spaces are not allowed"),
])
def test_new_bad_mask(standin, mask, message):
    """A mask naming no Place field, or with spaces, is 400 INVALID_ARGUMENT."""
    status, _, body = standin.search(mask=mask)
    error = new_error_of(body)
    assert status == 400 and error["status"] == "INVALID_ARGUMENT" and message in error["message"]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", {}, {"locationRestriction": {"circle": {"radius": 500}}},
    {"locationRestriction": {"circle": {"center": {"latitude": 91, "longitude": 0},
                                        "radius": 500}}},
    {"locationRestriction": {"circle": {"center": {"latitude": 1, "longitude": 0}}}},
    {"locationRestriction": {"circle": {"center": {"latitude": 1, "longitude": 0},
                                        "radius": 50001}}},
    {"maxResultCount": 0, "locationRestriction": {"circle": {
        "center": {"latitude": 1, "longitude": 0}, "radius": 500}}},
    {"maxResultCount": 21, "locationRestriction": {"circle": {
        "center": {"latitude": 1, "longitude": 0}, "radius": 500}}},
    {"maxResultCount": "5", "locationRestriction": {"circle": {
        "center": {"latitude": 1, "longitude": 0}, "radius": 500}}},
])
def test_new_invalid_body(standin, body):
    """A body without a valid circle or with maxResultCount outside 1..20: 400 INVALID_ARGUMENT."""
    status, _, answer = standin.search(body=body)
    assert status == 400 and new_error_of(answer)["status"] == "INVALID_ARGUMENT"
    assert new_error_of(answer)["code"] == 400


@pytest.mark.parametrize("mode, code, status, message, reason", [
    ("request_denied", 403, "PERMISSION_DENIED", "Places API (New) has not been used in project",
     "SERVICE_DISABLED"),
    ("over_query_limit", 429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric",
     "RATE_LIMIT_EXCEEDED"),
    ("invalid_request", 400, "INVALID_ARGUMENT", "Invalid request: ", None),
    ("http500", 500, "INTERNAL", "Internal error encountered.", None),
])
def test_new_error_modes(standin, mode, code, status, message, reason):
    """Failure modes answer as the New API fails: google.rpc.Status with real HTTP codes."""
    set_mode(standin, mode)
    got, headers, body = standin.search()
    error = new_error_of(body)
    assert got == code and error["code"] == code and error["status"] == status
    assert error["message"].startswith(message)
    assert headers["Content-Type"].startswith("application/json")
    if reason:
        [detail] = error["details"]
        assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert detail["reason"] == reason
    else:
        assert "details" not in error


def test_new_body_modes(standin):
    """zero, malformed, truncated and blanklines shape the New answer as they do the legacy one."""
    whole = standin.search()[2]
    set_mode(standin, "zero")
    assert standin.search()[:3:2] == (200, b"{}\n")
    set_mode(standin, "malformed")
    assert standin.search()[:3:2] == (200, b'{"results" : [ {"name" : ')
    set_mode(standin, "truncated")
    status, headers, body = standin.search()
    assert status == 200 and body == whole[:len(whole) // 2]
    assert int(headers["Content-Length"]) == len(body)
    set_mode(standin, "blanklines")
    body = standin.search()[2]
    assert body.count(b"\n    },\n\n\n    {\n") == 19
    assert re.sub(rb"\n+", b"\n", body) == whole and json.loads(body) == json.loads(whole)


def test_new_hang_and_latency(standin):
    """hang holds a New request too; latency delays it."""
    set_mode(standin, "hang")
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        standin.search(timeout=0.5)
    assert 0.4 <= time.monotonic() - started < 3
    set_mode(standin, "ok", latency_ms=200)
    started = time.monotonic()
    assert standin.search()[0] == 200
    assert time.monotonic() - started >= 0.19


def test_flaky500(standin):
    """flaky500: the next N Places requests (either API) answer HTTP 500, then all are ok."""
    assert standin.control("/_standin/mode?mode=flaky500&failures=3") == {
        "mode": "flaky500", "latency_ms": 0, "failures_left": 3}
    assert standin.nearby()[0] == 500
    status, _, body = standin.search()
    assert status == 500 and new_error_of(body)["status"] == "INTERNAL"
    assert standin.control("/_standin/stats")["failures_left"] == 1
    assert standin.nearby()[0] == 500
    assert places_json(standin.nearby()[2])["status"] == "OK"
    assert standin.search()[0] == 200
    stats = standin.control("/_standin/stats")
    assert (stats["mode"], stats["failures_left"], stats["requests"]) == ("flaky500", 0, 5)
    #  failures defaults to 1; it must be a whole number
    assert standin.control("/_standin/mode?mode=flaky500")["failures_left"] == 1
    assert standin.get("/_standin/mode?mode=flaky500&failures=x")[0] == 400
    assert standin.nearby()[0] == 500 and standin.nearby()[0] == 200


def test_new_stats(standin):
    """Stats: requests per path, the last mask, SKU, headers and body; the key only in keys_seen."""
    standin.nearby(key="legacy-key")
    standin.search(key="sekret-new-key", count=3)
    stats = standin.control("/_standin/stats")
    assert stats["requests"] == 2
    assert stats["requests_by_path"] == {NEARBY: 1, NEW: 1}
    assert stats["last_field_mask"] == PRO_MASK and stats["last_sku"] == "Pro"
    headers = {name.lower(): value for name, value in stats["last_headers"].items()}
    assert headers["x-goog-api-key"] == "<redacted>"
    assert headers["x-goog-fieldmask"] == PRO_MASK
    assert stats["last_body"] == {"maxResultCount": 3, "locationRestriction": {"circle": {
        "center": {"latitude": 34.06893, "longitude": -118.445127}, "radius": 10000.0}}}
    assert stats["keys_seen"] == ["legacy-key", "sekret-new-key"]
    del stats["keys_seen"]
    assert "sekret" not in json.dumps(stats) and "legacy-key" not in json.dumps(stats)


def test_new_routes(standin):
    """GET on the New path and POST elsewhere are 404 and not counted."""
    assert standin.get(NEW)[0] == 404
    assert standin.search(path=NEARBY)[0] == 404
    assert standin.search(path="/v1/places:searchText")[0] == 404
    assert standin.control("/_standin/stats")["requests"] == 0


# ------------------------------------------------------------ control endpoints

def test_stats_and_keys_seen(standin):
    """Only Places requests count; last_query hides the key; keys_seen lists distinct keys in order."""
    assert standin.control("/_standin/stats") == EMPTY_STATS
    for key in ("key-A", "key-B", "key-A"):
        standin.nearby(key=key)
    standin.nearby(location="bad", key="key-C")                  # invalid requests count too
    standin.nearby(radius=1500, key=None)
    standin.get("/nope")
    stats = standin.control("/_standin/stats")
    assert stats["requests"] == 5 and stats["requests_by_path"] == {NEARBY: 5}
    assert stats["keys_seen"] == ["key-A", "key-B", "key-C"]
    assert stats["last_query"] == {"location": UCLA, "radius": "1500", "key_present": False}
    standin.nearby(location=UCLA.replace(",", "%2C"), key="secret")
    stats = standin.control("/_standin/stats")
    assert stats["last_query"] == {"location": UCLA, "radius": "10000", "key_present": True}
    assert "secret" in stats["keys_seen"] and "key" not in stats["last_query"]


def test_mode_endpoint(standin):
    """/_standin/mode sets either setting alone and refuses unknown modes or bad latencies."""
    assert standin.control("/_standin/mode?latency_ms=40") == {"mode": "ok", "latency_ms": 40}
    assert standin.control("/_standin/mode?mode=zero") == {"mode": "zero", "latency_ms": 40}
    assert standin.control("/_standin/mode") == {"mode": "zero", "latency_ms": 40}
    assert standin.get("/_standin/mode?mode=bogus")[0] == 400
    assert standin.get("/_standin/mode?latency_ms=-1")[0] == 400
    assert standin.get("/_standin/mode?latency_ms=abc")[0] == 400
    stats = standin.control("/_standin/stats")
    assert (stats["mode"], stats["latency_ms"], stats["requests"]) == ("zero", 40, 0)


def test_reset(standin):
    """/_standin/reset zeroes counters and restores mode ok, latency 0."""
    set_mode(standin, "http500", latency_ms=50)
    standin.nearby(key="k")
    standin.search(key="k2")
    assert standin.control("/_standin/reset") == {"mode": "ok", "latency_ms": 0, "requests": 0}
    assert standin.control("/_standin/stats") == EMPTY_STATS
    started = time.monotonic()
    assert standin.nearby()[0] == 200 and time.monotonic() - started < 0.5


# ------------------------------------------------------------ HTTP behaviour

def test_keep_alive(standin):
    """HTTP/1.1 with Content-Length: one connection carries several requests, errors included."""
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=5)
    try:
        sock = None
        for path, mode, code in ((NEARBY + "?location=1,2&radius=1000&key=k", "ok", 200),
                                 (NEARBY + "?location=1,2&radius=1000&key=k", "http500", 500),
                                 ("/nope", "ok", 404),
                                 (NEARBY + "?location=1%2C2&radius=100&key=k", "ok", 200)):
            set_mode(standin, mode)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            assert (response.status, response.version) == (code, 11)
            assert int(response.getheader("Content-Length")) == len(body)
            assert sock is None or conn.sock is sock
            sock = conn.sock
    finally:
        conn.close()


def test_server_stays_quiet(standin):
    """After all the above: nothing more on stdout, nothing on stderr."""
    ready, _, _ = select.select([standin.proc.stdout], [], [], 0)
    assert not ready
    assert standin.read_stderr() == ""


# ------------------------------------------------------------ own processes

def test_cli_mode_and_latency(tmp_path):
    """--mode and --latency-ms set the starting state; SIGINT ends the server cleanly."""
    server = Standin(str(tmp_path), "--mode", "zero", "--latency-ms", "200")
    try:
        stats = server.control("/_standin/stats")
        assert (stats["mode"], stats["latency_ms"]) == ("zero", 200)
        started = time.monotonic()
        assert places_json(server.nearby()[2])["status"] == "ZERO_RESULTS"
        assert time.monotonic() - started >= 0.19
    finally:
        assert server.stop(signal.SIGINT) == 0
    assert server.read_stderr() == ""


def test_bad_cli_is_refused(tmp_path):
    """An unknown --mode is a usage error (exit 2) and no port file appears."""
    result = subprocess.run([sys.executable, STANDIN, "--mode", "bogus",
                             "--port-file", str(tmp_path / "port")],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert not (tmp_path / "port").exists()


def test_sigterm_with_a_hanging_request(tmp_path):
    """SIGTERM ends the server promptly (exit 0) even while a request hangs."""
    server = Standin(str(tmp_path), "--mode", "hang")
    outcome = {}

    def hanging_request():
        """A Places request that can only end when the server goes away."""
        try:
            outcome["answer"] = server.nearby(timeout=30)
        except (OSError, http.client.HTTPException) as error:
            outcome["error"] = error

    thread = threading.Thread(target=hanging_request)
    try:
        thread.start()
        deadline = time.monotonic() + 5
        while server.control("/_standin/stats")["requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 3
        thread.join(timeout=5)
        assert not thread.is_alive() and "error" in outcome, outcome
    finally:
        server.stop(signal.SIGKILL)
    assert server.read_stderr() == ""
