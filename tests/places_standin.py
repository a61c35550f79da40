#!/usr/bin/env python3
"""Stand-in Google Places server (Legacy and New Nearby Search) for herd tests; stdlib only.

Serves GET /maps/api/place/nearbysearch/json (legacy) with deterministic results
printed in Google's own JSON layout (3-space indent, "key" : value, sorted keys),
and POST /v1/places:searchNearby (Places API (New)) with the same places in the
New shape, plus failure modes, adjustable latency and control endpoints under
/_standin/.

    places_standin.py [--host 127.0.0.1] [--port 0] [--latency-ms N]
                      [--mode MODE] [--failures N] [--port-file PATH]

Results: available = min(20, floor(radius_metres / 500)); result i depends only
on (location, i) and lies within 450 * (i + 1) metres of the query point, so it
is always inside the asked radius, and a smaller radius gives a prefix of the
results of a larger one. A full legacy page (20) carries a "next_page_token".

New: the X-Goog-Api-Key header (or a key parameter) is required (else 403
PERMISSION_DENIED), and so is a field mask, X-Goog-FieldMask or the $fields or
fields parameter (else 400 INVALID_ARGUMENT "FieldMask is a required
parameter..."); a path that names no Place field is 400 INVALID_ARGUMENT too.
The JSON body needs locationRestriction.circle (center latitude/longitude,
radius in (0, 50000]) and may carry maxResultCount (1..20, default 20). The
answer is {"places": [...]} with min(available, maxResultCount) places holding
only the masked fields, or {} when there are none.

Modes (global; --mode, or GET /_standin/mode?mode=X&latency_ms=N at run time;
a "-" in a mode's name reads as "_", so new-only is new_only):
    ok                normal answers (default)
    zero              status ZERO_RESULTS (legacy) or {} (New) for valid requests
    request_denied    legacy: HTTP 200 REQUEST_DENIED (legacy API not enabled);
                      New: HTTP 403 PERMISSION_DENIED (API not enabled)
    new_only          a key made today (its project has Places API (New) only):
                      legacy: HTTP 200 REQUEST_DENIED "You're calling a legacy API,
                      which is not enabled..."; New: normal answers
    invalid_key       legacy: HTTP 200 REQUEST_DENIED "The provided API key is
                      invalid."; New: HTTP 400 INVALID_ARGUMENT (API_KEY_INVALID)
    over_query_limit  legacy: HTTP 200 OVER_QUERY_LIMIT; New: 429 RESOURCE_EXHAUSTED
    invalid_request   legacy: HTTP 200 INVALID_REQUEST; New: 400 INVALID_ARGUMENT
    http500           legacy: HTTP 500, small HTML body; New: 500 INTERNAL
    flaky500          the next N Places requests (failures=N, default 1) answer as
                      http500, then every one as ok
    malformed         HTTP 200, body '{"results" : [ {"name" : ' (invalid JSON)
    truncated         HTTP 200, the normal body cut in half (Content-Length fits)
    hang              never answer; hold until the client goes or 120 s pass
    blanklines        normal body with "\\n\\n" inserted between results/places
    broken            HTTP 200 and the normal Content-Length, half the body, then the
                      connection closes (a connection broken under an answer)
    flaky_broken      the next N Places requests (failures=N) answer as broken,
                      then every one as ok
    huge              HTTP 200 with a 9 MiB body of spaces (more than herd takes)
    quota_retry       as over_query_limit; New: the 429 carries a RetryInfo of 30 s

Per latitude (GET /_standin/mode?lat=N&mode=X&latency_ms=M): requests whose
latitude's whole part (truncated) is N take mode X (default ok) and latency M
(default 0) instead of the global ones, so one server can hang, answer slowly
and answer at once at the same time; /_standin/reset drops them.

Latency: an answer is built as soon as its request is read (by one builder
thread, in arrival order) and sent latency_ms after that, so its CPU time
overlaps the wait: concurrent requests (one thread per connection) each take
about the latency while their building fits in it.

Control: /_standin/mode, /_standin/stats, /_standin/reset, /_standin/connections
(connections that carried Places requests) (plain JSON answers).
Stats count Places requests in all and per path, and show the last query (key
hidden), the last New request's field mask, its SKU, its headers (the key
redacted) and body; keys appear only in keys_seen.
"""

import argparse
import base64
import functools
import hashlib
import http.server
import json
import math
import os
import queue
import re
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse

NEARBY_PATH = "/maps/api/place/nearbysearch/json"
NEW_PATH = "/v1/places:searchNearby"
JSON_TYPE = "application/json; charset=UTF-8"     # Content-Type of Places answers
MODES = ("ok", "zero", "request_denied", "new_only", "invalid_key", "over_query_limit",
         "invalid_request", "http500", "flaky500", "malformed", "truncated", "hang", "blanklines",
         "broken", "flaky_broken", "huge", "quota_retry")
FLAKY = {"flaky500": "http500", "flaky_broken": "broken"}     # what a flaky mode fails as
HUGE_SIZE = 9 * 1024 * 1024
HANG_MAX_S = 120.0
RESULTS_PER_PAGE = 20
METRES_PER_RESULT = 500
INLINE_LIST_MAX = 72        # a scalar list whose inline form is this long or less stays on one line

MSG_NO_KEY = ("You must use an API key to authenticate each request to "
              "Google Maps Platform APIs.")
MSG_LEGACY = ("You're calling a legacy API, which is not enabled for your project. "
              "To get newer features and more functionality, switch to the Places API "
              "(New) or Routes API. Learn more: "
              "https://developers.google.com/maps/legacy#LegacyApiNotActivatedMapError")
MSG_QUOTA = "You have exceeded your daily request quota for this API."
MSG_INVALID_KEY = "The provided API key is invalid."
MSG_NEW_INVALID_KEY = "API key not valid. Please pass a valid API key."
MSG_NEW_NO_KEY = "The request is missing a valid API key."
MSG_NEW_NO_MASK = ("FieldMask is a required parameter. See "
                   "https://cloud.google.com/apis/docs/system-parameters#definitions.")
MSG_NEW_DISABLED = ("Places API (New) has not been used in project 123456789012 before or it "
                    "is disabled. Enable it by visiting https://console.developers.google.com/"
                    "apis/api/places.googleapis.com/overview?project=123456789012 then retry. "
                    "If you enabled this API recently, wait a few minutes for the action to "
                    "propagate to our systems and retry.")
MSG_NEW_QUOTA = ("Quota exceeded for quota metric 'SearchNearbyRequest' and limit "
                 "'SearchNearbyRequest per minute per project' of service "
                 "'places.googleapis.com' for consumer 'project_number:123456789012'.")
MSG_NEW_INTERNAL = "Internal error encountered."
MSG_NEW_INVALID = "Invalid request: locationRestriction.circle is invalid."
MALFORMED_BODY = b'{"results" : [ {"name" : '
HTML_500 = (b"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            b"<title>Error 500 (Server Error)!!1</title></head>\n"
            b"<body><p><b>500.</b> That's an error.</p></body></html>\n")

NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
OLC_ALPHABET = "23456789CFGHJMPQRVWX"

# Kinds of place: (icon name, pinlet, background colour, types, name nouns).
KINDS = (
    ("bar", "bar_pinlet", "#FF9E67",
     ["bar", "restaurant", "food", "point_of_interest", "establishment"],
     ("Bar", "Tavern", "Wine Bar")),
    ("restaurant", "restaurant_pinlet", "#FF9E67",
     ["restaurant", "food", "point_of_interest", "establishment"],
     ("Kitchen", "Fish & Chips", "Grill")),
    ("cafe", "cafe_pinlet", "#FF9E67",
     ["cafe", "food", "point_of_interest", "establishment"],
     ("Café", "Coffee House", "Espresso Bar")),
    ("lodging", "hotel_pinlet", "#909CE1",
     ["lodging", "point_of_interest", "establishment"],
     ("Hotel", "Inn", "Hostel")),
    ("shopping", "shopping_pinlet", "#4B96F3",
     ["book_store", "store", "point_of_interest", "establishment"],
     ("Books", "Bookshop", "Reading Room")),
    ("generic_business", "generic_pinlet", "#7B9EB0",
     ["travel_agency", "bar", "lodging", "restaurant", "food",
      "point_of_interest", "establishment"],
     ("Travel Lodge", "Traveller's Rest", "Backpackers")),
)
ADJECTIVES = ("Golden", "Blue Door", "Old Harbour", "Sunset", "Corner", "Hilltop",
              "Lantern", "Riverside", "Little", "Northside", "Red Brick", "Orchard")
STREETS = ("Westwood Blvd", "Gayley Ave", "Le Conte Ave", "Wilshire Blvd", "Pitt St",
           "Kent St", "Bruin Walk", "Strathmore Pl", "Glenrock Ave", "Weyburn Ave")
LOCALITIES = ("Los Angeles, California", "Westwood, California",
              "Sydney, New South Wales", "The Rocks, New South Wales")
CONTRIBUTORS = ("A Google User", "Jane Smith", "Kenji Watanabe", "Maria Garcia")
PHOTO_SIZES = ((4032, 3024), (3024, 4032), (1080, 608), (4000, 3000), (1920, 1080))


# ---------------------------------------------------------------- Google JSON

G_ESCAPED_RE = re.compile(r'["\\<>&\x00-\x1f\u2028\u2029]')   # what g_string escapes
G_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def g_escape(match):
    """The escape of one character g_string must not print raw."""
    ch = match.group()
    return G_ESCAPES.get(ch) or "\\u%04x" % ord(ch)


def g_string(text):
    """Quote a string the way Google does: <, > and & as \\u escapes, UTF-8 kept raw.

    One regular-expression pass, not a loop per character: an answer of 20
    results holds some 1000 strings, and the loop cost milliseconds per answer."""
    return '"' + G_ESCAPED_RE.sub(g_escape, text) + '"'


def g_scalar(value):
    """Print a scalar; whole floats print as integers (rating 4, not 4.0)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON has no NaN or infinity")
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return g_string(value)


G_KEY_LINES = [{} for _ in range(16)]   # per level: key -> "\n" + indent + quoted key + " : "


def g_float(value):
    """g_scalar of a float."""
    if value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or infinity")
    return repr(value)


def g_write(value, level, out):
    """Append the printed value to the list out (see g_dumps), piece by piece.

    Pieces in one list, quoted keys remembered per level, scalars printed
    without a call per value: an answer of 20 results prints some 900 values,
    and 200 concurrent answers share one core (and the GIL)."""
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, dict)):
        if not value:
            out.append("{}")
            return
        key_lines = G_KEY_LINES[level] if level < len(G_KEY_LINES) else {}
        separator = "{"
        for key in sorted(value):
            line = key_lines.get(key)
            if line is None:
                line = "\n" + "   " * (level + 1) + g_string(key) + " : "
                if len(key_lines) < 1024:
                    key_lines[key] = line
            item = value[key]
            kind = type(item)
            if kind is str:                         # scalars here: no call to g_write
                out.append(separator + line + g_string(item))
            elif kind is float:
                out.append(separator + line + g_float(item))
            elif kind is dict or kind is list or isinstance(item, (dict, list)):
                out.append(separator + line)
                g_write(item, level + 1, out)
            else:
                out.append(separator + line + g_scalar(item))
            separator = ","
        out.append("\n" + "   " * level + "}")
    elif kind is list or isinstance(value, list):
        if not value:
            out.append("[]")
            return
        if not any(isinstance(v, (dict, list)) for v in value):
            scalars = [g_scalar(v) for v in value]
            inline = "[ " + ", ".join(scalars) + " ]"
            if len(inline) <= INLINE_LIST_MAX:
                out.append(inline)
            else:
                inner = "\n" + "   " * (level + 1)
                out.append("[" + inner + ("," + inner).join(scalars) + "\n" + "   " * level + "]")
            return
        inner = "\n" + "   " * (level + 1)
        head = "[" + inner
        for item in value:
            out.append(head)
            g_write(item, level + 1, out)
            head = "," + inner
        out.append("\n" + "   " * level + "]")
    elif kind is str:
        out.append(g_string(value))
    else:
        out.append(g_scalar(value))


def g_dumps(value, level=0):
    """Print a value in Google's layout: 3-space indent, " : ", sorted keys, short scalar lists inline."""
    out = []
    g_write(value, level, out)
    return "".join(out)


def g_body(document):
    """Encode a whole response document as Google does: layout above, ending "}\\n"."""
    return (g_dumps(document) + "\n").encode("utf-8")


# ------------------------------------------------------------- place results

def h_int(seed, label, modulo):
    """Deterministic integer in [0, modulo) derived from seed and a label."""
    digest = hashlib.sha1((seed + "|" + label).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % modulo


def h_token(seed, label, length):
    """Deterministic base64url text of the given length derived from seed and a label."""
    prefix = ("%s|%s|" % (seed, label)).encode("utf-8")
    digests = []                            # of "seed|label|n" for n = 0, 1, ...: 20 bytes each
    while len(digests) * 20 * 4 // 3 < length + 4:
        digests.append(hashlib.sha1(prefix + b"%d" % len(digests)).digest())
    return base64.urlsafe_b64encode(b"".join(digests)).decode("ascii").rstrip("=")[:length]


def plus_code(lat, lng):
    """Open Location Code with 10 digits (e.g. "8553XJ9W+QX") for a point."""
    lat_i = min(int(math.floor((lat + 90.0) * 8000)), 180 * 8000 - 1)
    lng_i = int(math.floor(((lng + 180.0) % 360.0) * 8000))
    pairs = []
    for _ in range(5):
        pairs.append(OLC_ALPHABET[lat_i % 20] + OLC_ALPHABET[lng_i % 20])
        lat_i //= 20
        lng_i //= 20
    code = "".join(reversed(pairs))
    return code[:8] + "+" + code[8:]


def unsigned_zero(value):
    """Turn -0.0 into 0.0 so coordinates never print as "-0"."""
    return 0.0 if value == 0 else value


def make_result(lat, lng, index):
    """Build result number index for a query point; depends only on (lat, lng, index)."""
    seed = "%r,%r#%d" % (lat, lng, index)
    icon, pinlet, colour, types, nouns = KINDS[h_int(seed, "kind", len(KINDS))]
    name = "%s %s" % (ADJECTIVES[h_int(seed, "adj", len(ADJECTIVES))],
                      nouns[h_int(seed, "noun", len(nouns))])

    # Place it within 450 * (index + 1) m: inside any radius that yields this index.
    distance = METRES_PER_RESULT * 0.9 * (index + h_int(seed, "dist", 1000) / 1000.0)
    bearing = 2 * math.pi * h_int(seed, "bearing", 3600) / 3600.0
    cos_lat = max(math.cos(math.radians(lat)), 0.01)
    p_lat = max(-90.0, min(90.0, lat + distance * math.cos(bearing) / 111320.0))
    p_lng = lng + distance * math.sin(bearing) / (111320.0 * cos_lat)
    p_lng = (p_lng + 180.0) % 360.0 - 180.0
    p_lat, p_lng = unsigned_zero(round(p_lat, 7)), unsigned_zero(round(p_lng, 7))
    half = 0.0013489802915

    place_id = "ChIJ" + h_token(seed, "place_id", 23)
    code = plus_code(p_lat, p_lng)
    if index % 5 == 2:
        rating = float(3 + h_int(seed, "rating", 3))                       # whole: prints "4"
    else:
        rating = float("%d.%d" % (3 + h_int(seed, "rating", 2), 1 + h_int(seed, "tenths", 9)))
    width, height = PHOTO_SIZES[h_int(seed, "photo", len(PHOTO_SIZES))]
    contributor = 10 ** 20 + h_int(seed, "contrib", 9 * 10 ** 20)

    result = {
        "business_status": "OPERATIONAL",
        "geometry": {
            "location": {"lat": p_lat, "lng": p_lng},
            "viewport": {
                "northeast": {"lat": unsigned_zero(p_lat + half), "lng": unsigned_zero(p_lng + half)},
                "southwest": {"lat": unsigned_zero(p_lat - half), "lng": unsigned_zero(p_lng - half)},
            },
        },
        "icon": "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/%s-71.png" % icon,
        "icon_background_color": colour,
        "icon_mask_base_uri": "https://maps.gstatic.com/mapfiles/place_api/icons/v2/" + pinlet,
        "name": name,
        "opening_hours": {"open_now": h_int(seed, "open", 2) == 1},
        "photos": [{
            "height": height,
            "html_attributions": ['<a href="https://maps.google.com/maps/contrib/%d">%s</a>'
                                  % (contributor, CONTRIBUTORS[h_int(seed, "who", len(CONTRIBUTORS))])],
            "photo_reference": "Aap_uE" + h_token(seed, "photo_reference", 150),
            "width": width,
        }],
        "place_id": place_id,
        "plus_code": {
            "compound_code": code[4:] + " " + LOCALITIES[h_int("%r,%r" % (lat, lng), "locality", len(LOCALITIES))],
            "global_code": code,
        },
        "rating": rating,
        "reference": place_id,
        "scope": "GOOGLE",
        "types": list(types),
        "user_ratings_total": 1 + h_int(seed, "ratings", 5000),
        "vicinity": "%d %s" % (1 + h_int(seed, "number", 2000),
                               STREETS[h_int(seed, "street", len(STREETS))]),
    }
    if icon in ("bar", "restaurant", "cafe") and h_int(seed, "has_price", 2):
        result["price_level"] = 1 + h_int(seed, "price", 3)              # optional field, sometimes absent
    return result


def available_results(radius):
    """How many results a radius (metres) yields: min(20, floor(radius / 500))."""
    return min(RESULTS_PER_PAGE, int(math.floor(radius / METRES_PER_RESULT)))


def parse_number(text):
    """Parse a plain decimal number (no nan/inf/underscores), or return None."""
    text = text.strip()
    if not NUMBER_RE.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_location(text):
    """Parse "lat,lng" into two floats within range, or return None."""
    parts = text.split(",")
    if len(parts) != 2:
        return None
    lat, lng = parse_number(parts[0]), parse_number(parts[1])
    if lat is None or lng is None or not -90 <= lat <= 90 or not -180 <= lng <= 180:
        return None
    return lat + 0.0, lng + 0.0


def status_document(status, message=None):
    """An answer without results: html_attributions, results [], status, optional error_message."""
    document = {"html_attributions": [], "results": [], "status": status}
    if message is not None:
        document["error_message"] = message
    return document


@functools.lru_cache(maxsize=256)
def results_body(lat, lng, count):
    """The OK body with count results for a point (cached: 50 concurrent asks cost one build)."""
    document = status_document("OK")
    document["results"] = [make_result(lat, lng, i) for i in range(count)]
    if count == RESULTS_PER_PAGE:
        document["next_page_token"] = "AW30NDz" + h_token("%r,%r" % (lat, lng), "page2", 250)
    return g_body(document)


def nearby_answer(params):
    """Answer a Nearby Search query (first value of each parameter): (status, body)."""
    if not params.get("key"):
        return "REQUEST_DENIED", g_body(status_document("REQUEST_DENIED", MSG_NO_KEY))
    location = parse_location(params.get("location", ""))
    radius = parse_number(params.get("radius", ""))
    if location is None or radius is None or radius < 0:
        return "INVALID_REQUEST", g_body(status_document("INVALID_REQUEST"))
    count = available_results(radius)
    if count == 0:
        return "ZERO_RESULTS", g_body(status_document("ZERO_RESULTS"))
    return "OK", results_body(location[0], location[1], count)


def insert_blank_lines(body):
    """Put "\\n\\n" between consecutive results (elements of the top-level results array)."""
    return body.replace(b"\n      },\n      {\n", b"\n      },\n\n\n      {\n")


# ------------------------------------------------------- Places API (New)

# Place fields by Nearby Search (New) SKU: a request bills at its costliest field.
SKU_PRO_FIELDS = (
    "accessibilityOptions", "addressComponents", "addressDescriptor", "adrFormatAddress",
    "attributions", "businessStatus", "containingPlaces", "displayName", "formattedAddress",
    "googleMapsLinks", "googleMapsUri", "iconBackgroundColor", "iconMaskBaseUri", "id",
    "location", "name", "photos", "plusCode", "postalAddress", "primaryType",
    "primaryTypeDisplayName", "pureServiceAreaBusiness", "shortFormattedAddress",
    "subDestinations", "timeZone", "types", "utcOffsetMinutes", "viewport")
SKU_ENTERPRISE_FIELDS = (
    "currentOpeningHours", "currentSecondaryOpeningHours", "internationalPhoneNumber",
    "nationalPhoneNumber", "priceLevel", "priceRange", "rating", "regularOpeningHours",
    "regularSecondaryOpeningHours", "userRatingCount", "websiteUri")
SKU_ATMOSPHERE_FIELDS = (
    "allowsDogs", "curbsidePickup", "delivery", "dineIn", "editorialSummary",
    "evChargeAmenitySummary", "evChargeOptions", "fuelOptions", "generativeSummary",
    "goodForChildren", "goodForGroups", "goodForWatchingSports", "liveMusic",
    "menuForChildren", "neighborhoodSummary", "outdoorSeating", "parkingOptions",
    "paymentOptions", "reservable", "restroom", "reviews", "reviewSummary", "routingSummaries",
    "servesBeer", "servesBreakfast", "servesBrunch", "servesCocktails", "servesCoffee",
    "servesDessert", "servesDinner", "servesLunch", "servesVegetarianFood", "servesWine",
    "takeout")
PLACE_FIELDS = set(SKU_PRO_FIELDS + SKU_ENTERPRISE_FIELDS + SKU_ATMOSPHERE_FIELDS)
PRICE_LEVELS = ("PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE",
                "PRICE_LEVEL_EXPENSIVE", "PRICE_LEVEL_VERY_EXPENSIVE")
ATTRIBUTION_RE = re.compile(r'^<a href="([^"]*)">([^<]*)</a>$')


def new_place(result):
    """The New API's Place for a legacy result: the same place, New field names and shapes."""
    place_id = result["place_id"]
    geometry = result["geometry"]
    location, view = geometry["location"], geometry["viewport"]
    vicinity = result["vicinity"]
    locality = result["plus_code"]["compound_code"].split(" ", 1)[1]
    photos = []
    for photo in result["photos"]:
        authors = []
        for html in photo["html_attributions"]:
            uri, name = ATTRIBUTION_RE.match(html).groups()
            authors.append({"displayName": name, "uri": uri,
                            "photoUri": "//lh3.googleusercontent.com/a/" + uri.rsplit("/", 1)[1]})
        photos.append({"name": "places/%s/photos/%s" % (place_id, photo["photo_reference"]),
                       "widthPx": photo["width"], "heightPx": photo["height"],
                       "authorAttributions": authors})
    place = {
        "name": "places/" + place_id,
        "id": place_id,
        "types": list(result["types"]),
        "formattedAddress": "%s, %s, USA" % (vicinity, locality),
        "shortFormattedAddress": vicinity,
        "location": {"latitude": location["lat"], "longitude": location["lng"]},
        "viewport": {"low": {"latitude": view["southwest"]["lat"],
                             "longitude": view["southwest"]["lng"]},
                     "high": {"latitude": view["northeast"]["lat"],
                              "longitude": view["northeast"]["lng"]}},
        "rating": result["rating"],
        "googleMapsUri": "https://maps.google.com/?cid=%d" % h_int(place_id, "cid", 10 ** 19),
        "websiteUri": "https://example.com/%s" % place_id.lower(),
        "utcOffsetMinutes": -420,
        "businessStatus": result["business_status"],
        "userRatingCount": result["user_ratings_total"],
        "iconMaskBaseUri": result["icon_mask_base_uri"],
        "iconBackgroundColor": result["icon_background_color"],
        "displayName": {"text": result["name"], "languageCode": "en"},
        "primaryType": result["types"][0],
        "currentOpeningHours": {"openNow": result["opening_hours"]["open_now"],
                                "weekdayDescriptions": ["Monday: 9:00 AM – 5:00 PM"]},
        "plusCode": {"globalCode": result["plus_code"]["global_code"],
                     "compoundCode": result["plus_code"]["compound_code"]},
        "photos": photos,
    }
    if "price_level" in result:
        place["priceLevel"] = PRICE_LEVELS[result["price_level"]]
    return place


def parse_field_mask(text):
    """Parse a field mask into a list of paths under places (None = all), or raise ValueError."""
    if " " in text or "\t" in text:
        raise ValueError("Spaces are not allowed in the field mask: '%s'." % text)
    paths = []
    for path in text.split(","):
        if path in ("*", "places", "places.*"):
            return None
        parts = path.split(".")
        if len(parts) < 2 or parts[0] != "places" or parts[1] not in PLACE_FIELDS:
            raise ValueError("Error expanding 'fields' parameter. Cannot find matching fields "
                             "for path '%s'." % path)
        paths.append(parts[1:])
    return paths


def mask_sku(paths):
    """The Nearby Search (New) SKU a field mask bills at: its costliest field."""
    fields = PLACE_FIELDS if paths is None else {p[0] for p in paths}
    if fields & set(SKU_ATMOSPHERE_FIELDS):
        return "Enterprise + Atmosphere"
    if fields & set(SKU_ENTERPRISE_FIELDS):
        return "Enterprise"
    return "Pro"


def apply_mask(place, paths):
    """Only the masked fields of a place (a path may name a subfield: places.displayName.text)."""
    if paths is None:
        return place
    out = {}
    for path in paths:
        source, target = place, out
        for i, name in enumerate(path):
            if not isinstance(source, dict) or name not in source:
                break
            if i == len(path) - 1:
                target[name] = source[name]
            else:
                source = source[name]
                target = target.setdefault(name, {})
    return out


def new_body(document):
    """Encode a New API answer as Google does: 2-space indent, UTF-8, ending "}\\n"."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def new_error(code, status, message, reason=None, retry_delay=None):
    """A google.rpc.Status error answer: (HTTP code, body); retry_delay ("30s") adds a RetryInfo."""
    error = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": reason, "domain": "googleapis.com",
                             "metadata": {"service": "places.googleapis.com"}}]
    if retry_delay:
        error["details"].append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": retry_delay})
    return code, new_body({"error": error})


def request_latitude(request):
    """The center latitude of a searchNearby body, or None."""
    try:
        latitude = request["locationRestriction"]["circle"]["center"]["latitude"]
    except (KeyError, TypeError):
        return None
    return latitude if isinstance(latitude, (int, float)) and math.isfinite(latitude) else None


def search_nearby_answer(request, paths):
    """Answer a valid-so-far searchNearby body: (HTTP code, body, place count)."""
    def number(value):
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if not isinstance(request, dict):
        return new_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") + (0,)
    circle = request.get("locationRestriction")
    circle = circle.get("circle") if isinstance(circle, dict) else None
    center = circle.get("center") if isinstance(circle, dict) else None
    if not isinstance(center, dict):
        return new_error(400, "INVALID_ARGUMENT",
                         "Invalid request: locationRestriction.circle.center is required.") + (0,)
    lat, lng = number(center.get("latitude", 0)), number(center.get("longitude", 0))
    radius = number(circle.get("radius", 0))
    if lat is None or lng is None or not -90 <= lat <= 90 or not -180 <= lng <= 180:
        return new_error(400, "INVALID_ARGUMENT",
                         "Invalid request: locationRestriction.circle.center is invalid.") + (0,)
    if radius is None or not 0 < radius <= 50000:
        return new_error(400, "INVALID_ARGUMENT",
                         "Invalid request: locationRestriction.circle.radius must be greater "
                         "than 0.0 and at most 50000.0.") + (0,)
    count = request.get("maxResultCount", RESULTS_PER_PAGE)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 20:
        return new_error(400, "INVALID_ARGUMENT",
                         "maxResultCount must be between 1 and 20, inclusive.") + (0,)
    count = min(count, available_results(radius))
    lat, lng = float(lat) + 0.0, float(lng) + 0.0
    places = [apply_mask(new_place(make_result(lat, lng, i)), paths) for i in range(count)]
    return 200, new_body({"places": places} if places else {}), count


def insert_blank_new_lines(body):
    """Put "\\n\\n" between consecutive places of a New body."""
    return body.replace(b"\n    },\n    {\n", b"\n    },\n\n\n    {\n")


# ------------------------------------------------------------------- server

class State:
    """Mode, latency and counters shared by all handler threads (guarded by a lock)."""

    def __init__(self, mode, latency_ms, failures=1):
        """Start with the given mode and latency and empty counters."""
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.mode, self.latency_ms = mode, latency_ms
        self.failures_left = failures if mode in FLAKY else 0
        self.overrides = {}         # whole latitude -> (mode, latency_ms)
        self.clear()

    def clear(self):
        """Empty the counters (lock held or not yet shared)."""
        self.requests, self.last_query, self.keys_seen = 0, None, []
        self.requests_by_path = {}
        self.connections = 0
        self.last_field_mask = self.last_sku = self.last_headers = self.last_body = None

    def record(self, path, params, headers=None, body=None, lat=None):
        """Count one Places request; return (mode, latency_ms) in force for it.

        headers (New only) is the request's header message (names match in any case);
        flaky500 answers as http500 while failures are left, then as ok (flaky_broken
        as broken); lat, the request's latitude, may pick a per-latitude mode."""
        with self.lock:
            self.requests += 1
            self.requests_by_path[path] = self.requests_by_path.get(path, 0) + 1
            query = {k: v for k, v in params.items() if k != "key"}
            query["key_present"] = bool(params.get("key"))
            self.last_query = query
            keys = [params.get("key")]
            if headers is not None:
                keys.append(headers.get("X-Goog-Api-Key"))
                self.last_headers = {name: ("<redacted>" if name.lower() == "x-goog-api-key"
                                            else value) for name, value in headers.items()}
                self.last_field_mask = (headers.get("X-Goog-FieldMask") or params.get("$fields")
                                        or params.get("fields"))
                self.last_body = body
                try:
                    self.last_sku = mask_sku(parse_field_mask(self.last_field_mask or ""))
                except ValueError:
                    self.last_sku = None
            for key in keys:
                if key and key not in self.keys_seen:
                    self.keys_seen.append(key)
            override = self.overrides.get(int(lat)) if lat is not None else None
            if override:
                return override
            mode = self.mode
            if mode in FLAKY:
                mode = FLAKY[mode] if self.failures_left > 0 else "ok"
                self.failures_left = max(0, self.failures_left - 1)
            return mode, self.latency_ms

    def count_connection(self):
        """Count one connection that carried Places requests."""
        with self.lock:
            self.connections += 1

    def set_override(self, lat, mode, latency_ms):
        """Requests whose latitude's whole part is lat take mode and latency_ms from now on."""
        with self.lock:
            self.overrides[lat] = (mode or "ok", latency_ms or 0)
            return {"lat": lat, "mode": mode or "ok", "latency_ms": latency_ms or 0}

    def set(self, mode=None, latency_ms=None, failures=None):
        """Change mode and/or latency; return the settings now in force."""
        with self.lock:
            if mode is not None:
                self.mode = mode
                if mode in FLAKY:
                    self.failures_left = 1 if failures is None else failures
            if latency_ms is not None:
                self.latency_ms = latency_ms
            settings = {"mode": self.mode, "latency_ms": self.latency_ms}
            if self.mode in FLAKY:
                settings["failures_left"] = self.failures_left
            return settings

    def reset(self):
        """Zero the counters and go back to mode ok, latency 0."""
        with self.lock:
            self.mode, self.latency_ms, self.failures_left = "ok", 0, 0
            self.overrides = {}
            self.clear()
            return {"mode": self.mode, "latency_ms": self.latency_ms, "requests": 0}

    def stats(self):
        """Snapshot of the counters; keys appear only in keys_seen."""
        with self.lock:
            return {"requests": self.requests, "requests_by_path": dict(self.requests_by_path),
                    "last_query": self.last_query, "last_field_mask": self.last_field_mask,
                    "last_sku": self.last_sku, "last_headers": self.last_headers,
                    "last_body": self.last_body, "keys_seen": list(self.keys_seen),
                    "mode": self.mode, "latency_ms": self.latency_ms,
                    "failures_left": self.failures_left}

    def connection_count(self):
        """{"connections": N}: connections that carried Places requests."""
        with self.lock:
            return {"connections": self.connections}


class Builder:
    """One thread that builds every answer, in the order asked.

    Building is CPU work under the GIL: done in the handler threads, 200 of
    them at once made the accepting and reading threads wait behind whole
    builds, so requests were read (and their latency started) one build
    after another. With one builder, reading a request waits at most for
    the GIL's switch interval."""

    def __init__(self):
        """Start the thread (a daemon: it holds nothing that must be finished)."""
        self.jobs = queue.SimpleQueue()
        threading.Thread(target=self.serve, name="builder", daemon=True).start()

    def serve(self):
        """Run jobs forever: each is (function, arguments, [outcome], done event)."""
        while True:
            function, args, outcome, done = self.jobs.get()
            try:
                outcome.append((True, function(*args)))
            except BaseException as error:          # noqa: BLE001 - handed back to the caller
                outcome.append((False, error))
            done.set()

    def run(self, function, *args):
        """function(*args) on the builder thread: its value, or its exception raised here."""
        outcome, done = [], threading.Event()
        self.jobs.put((function, args, outcome, done))
        done.wait()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value


class StandinServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP server (daemon threads) that keeps quiet about vanished clients."""

    daemon_threads = True
    request_queue_size = 1024    # a herd opens up to places/concurrency (256) connections at once

    def __init__(self, address, state):
        """Bind to address (IPv4 or IPv6) and keep the shared state."""
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.builder = Builder()
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        """Ignore clients that hung up; report anything else on stderr."""
        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class Handler(http.server.BaseHTTPRequestHandler):
    """One HTTP/1.1 connection: Places requests and /_standin/ control requests."""

    protocol_version = "HTTP/1.1"
    server_version = "scaffolding on HTTPServer2"
    timeout = 600               # idle keep-alive connections give their thread back eventually

    def version_string(self):
        """Server header as Google's front ends send it."""
        return self.server_version

    def log_message(self, format, *args):
        """Stay quiet: no line per request."""

    def send(self, code, body, content_type=None, broken=False):
        """Send a complete response with Content-Length so the connection can be reused;
        broken: only the first half of the body, then close the connection."""
        self.send_response(code)
        self.send_header("Content-Type", content_type or JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if broken:
            self.close_connection = True
            body = body[:len(body) // 2]
        self.wfile.write(body)

    def send_json(self, code, document):
        """Send a plain (non-Google-layout) JSON answer for control endpoints."""
        self.send(code, (json.dumps(document) + "\n").encode("utf-8"), "application/json")

    def do_GET(self):
        """Route a GET to the Places handler or a control endpoint."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            self.rfile.read(int(length))                     # drain a body so keep-alive stays in step
        url = urllib.parse.urlsplit(self.path)
        params = {}
        for name, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            params.setdefault(name, value)                   # first value wins
        route = {NEARBY_PATH: self.do_nearby, "/_standin/mode": self.do_mode,
                 "/_standin/stats": self.do_stats, "/_standin/reset": self.do_reset,
                 "/_standin/connections": self.do_connections}
        handler = route.get(url.path)
        if handler is None:
            self.send_json(404, {"error": "not found", "path": url.path})
        else:
            handler(params)

    def do_POST(self):
        """Route a POST to the Places API (New) handler; anything else is 404."""
        length = self.headers.get("Content-Length")
        if not (length and length.isdigit()):
            self.close_connection = True
            self.send_json(411, {"error": "Content-Length required"})
            return
        body = self.rfile.read(int(length))
        url = urllib.parse.urlsplit(self.path)
        params = {}
        for name, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
            params.setdefault(name, value)
        if url.path != NEW_PATH:
            self.send_json(404, {"error": "not found", "path": url.path})
            return
        self.do_search_nearby(params, body)

    def do_search_nearby(self, params, raw):
        """Answer a Places API (New) searchNearby request according to the mode in force."""
        started = time.monotonic()
        state = self.server.state
        self.count_connection()
        try:
            request = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            request = None
        mode, latency_ms = state.record(NEW_PATH, params, self.headers,
                                        request if request is not None
                                        else raw.decode("utf-8", "replace"),
                                        request_latitude(request))
        if mode == "hang":
            self.hang()
            return
        code, body = self.server.builder.run(self.search_nearby_reply, mode, params, request)
        if self.hold(started, latency_ms):
            self.send(code, body, broken=mode == "broken")

    def search_nearby_reply(self, mode, params, request):
        """The (HTTP code, body) of a New request in a mode other than hang."""
        key = self.headers.get("X-Goog-Api-Key") or params.get("key")
        mask = self.headers.get("X-Goog-FieldMask") or params.get("$fields") or params.get("fields")
        if not key:
            return new_error(403, "PERMISSION_DENIED", MSG_NEW_NO_KEY)
        if not mask:
            return new_error(400, "INVALID_ARGUMENT", MSG_NEW_NO_MASK)
        try:
            paths = parse_field_mask(mask)
        except ValueError as error:
            return new_error(400, "INVALID_ARGUMENT", str(error))
        if request is None:
            return new_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        failures = {
            "request_denied": (403, "PERMISSION_DENIED", MSG_NEW_DISABLED, "SERVICE_DISABLED"),
            "invalid_key": (400, "INVALID_ARGUMENT", MSG_NEW_INVALID_KEY, "API_KEY_INVALID"),
            "over_query_limit": (429, "RESOURCE_EXHAUSTED", MSG_NEW_QUOTA, "RATE_LIMIT_EXCEEDED"),
            "quota_retry": (429, "RESOURCE_EXHAUSTED", MSG_NEW_QUOTA, "RATE_LIMIT_EXCEEDED", "30s"),
            "invalid_request": (400, "INVALID_ARGUMENT", MSG_NEW_INVALID, None),
            "http500": (500, "INTERNAL", MSG_NEW_INTERNAL, None),
        }
        if mode in failures:
            return new_error(*failures[mode])
        if mode == "malformed":
            return 200, MALFORMED_BODY
        if mode == "huge":
            return 200, b" " * HUGE_SIZE
        code, body, count = search_nearby_answer(request, paths)
        if mode == "zero" and code == 200:
            body = new_body({})
        if mode == "truncated":
            body = body[:len(body) // 2]
        elif mode == "blanklines":
            body = insert_blank_new_lines(body)
        return code, body

    def do_nearby(self, params):
        """Answer a Legacy Nearby Search request according to the mode in force."""
        started = time.monotonic()
        state = self.server.state
        self.count_connection()
        location = parse_location(params.get("location", ""))
        mode, latency_ms = state.record(NEARBY_PATH, params, lat=location and location[0])
        if mode == "hang":
            self.hang()
            return
        code, body, content_type = self.server.builder.run(self.nearby_reply, mode, params)
        if self.hold(started, latency_ms):
            self.send(code, body, content_type, broken=mode == "broken")

    @staticmethod
    def nearby_reply(mode, params):
        """The (HTTP code, body, content type) of a legacy answer in a mode other than hang."""
        if mode == "http500":
            return 500, HTML_500, "text/html; charset=UTF-8"
        if mode == "malformed":
            return 200, MALFORMED_BODY, JSON_TYPE
        if mode == "huge":
            return 200, b" " * HUGE_SIZE, JSON_TYPE
        if mode in ("request_denied", "new_only"):
            body = g_body(status_document("REQUEST_DENIED", MSG_LEGACY))
        elif mode == "invalid_key":
            body = g_body(status_document("REQUEST_DENIED", MSG_INVALID_KEY))
        elif mode == "invalid_request":
            body = g_body(status_document("INVALID_REQUEST"))
        elif mode in ("over_query_limit", "quota_retry"):
            body = g_body(status_document("OVER_QUERY_LIMIT", MSG_QUOTA))
        else:
            status, body = nearby_answer(params)
            if mode == "zero" and status == "OK":
                body = g_body(status_document("ZERO_RESULTS"))
        if mode == "truncated":
            body = body[:len(body) // 2]
        elif mode == "blanklines":
            body = insert_blank_lines(body)
        return 200, body, JSON_TYPE

    def count_connection(self):
        """Count this connection in the stats once, at its first Places request."""
        if not getattr(self, "counted", False):
            self.counted = True
            self.server.state.count_connection()

    def hold(self, started, latency_ms):
        """Wait until latency_ms after started (the answer is built by then: its CPU
        time overlaps the wait instead of adding to it, so many concurrent requests
        still take the latency); False, and the connection to close, on shutdown."""
        if latency_ms > 0:
            left = started + latency_ms / 1000.0 - time.monotonic()
            if self.server.state.stopping.wait(max(left, 0.0)):
                self.close_connection = True
                return False
        return True

    def hang(self):
        """Hold the request without answering until the client leaves, 120 s pass, or shutdown."""
        deadline = time.monotonic() + HANG_MAX_S
        sock = self.connection
        while not self.server.state.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([sock], [], [], min(left, 0.25))
            if readable:
                try:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break                                 # orderly close by the client
                except OSError:
                    break                                     # reset by the client
                self.server.state.stopping.wait(min(left, 0.25))   # pipelined bytes: keep holding
        self.close_connection = True

    def do_mode(self, params):
        """GET /_standin/mode?mode=X&latency_ms=N: change either, answer the settings;
        with lat=L, set them for requests at latitude L only."""
        mode = params.get("mode")
        if mode is not None:
            mode = mode.replace("-", "_")
        if mode is not None and mode not in MODES:
            self.send_json(400, {"error": "unknown mode", "mode": mode, "modes": list(MODES)})
            return
        latency = params.get("latency_ms")
        if latency is not None and not latency.isdigit():
            self.send_json(400, {"error": "latency_ms must be a whole number", "latency_ms": latency})
            return
        failures = params.get("failures")
        if failures is not None and not failures.isdigit():
            self.send_json(400, {"error": "failures must be a whole number", "failures": failures})
            return
        lat = params.get("lat")
        if lat is not None:
            if not re.match(r"^-?\d+$", lat) or mode in FLAKY:
                self.send_json(400, {"error": "lat must be a whole number, mode not flaky", "lat": lat})
                return
            self.send_json(200, self.server.state.set_override(
                int(lat), mode, None if latency is None else int(latency)))
            return
        self.send_json(200, self.server.state.set(mode, None if latency is None else int(latency),
                                                  None if failures is None else int(failures)))

    def do_stats(self, params):
        """GET /_standin/stats: requests counted (in all, per path), last query (key hidden),
        last New field mask, SKU, headers (key redacted) and body, distinct keys seen."""
        self.send_json(200, self.server.state.stats())

    def do_connections(self, params):
        """GET /_standin/connections: connections that carried Places requests since reset."""
        self.send_json(200, self.server.state.connection_count())

    def do_reset(self, params):
        """GET /_standin/reset: zero counters, mode ok, latency 0."""
        self.send_json(200, self.server.state.reset())


def write_port_file(path, port):
    """Write the port number to path atomically (temp file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".standin-port-", dir=folder)
    with os.fdopen(fd, "w") as out:
        out.write("%d\n" % port)
    os.replace(temp, path)


def parse_args(argv):
    """Read the command line."""
    parser = argparse.ArgumentParser(description="Stand-in Google Places server for herd tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before each Places answer")
    parser.add_argument("--mode", choices=MODES, default="ok", type=lambda m: m.replace("-", "_"))
    parser.add_argument("--failures", type=int, default=1,
                        help="requests that fail first in mode flaky500")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    if args.failures < 0:
        parser.error("--failures must not be negative")
    return args


def main(argv=None):
    """Start the server, announce it, serve until SIGTERM or SIGINT, then exit 0."""
    args = parse_args(argv)
    # Threads reading requests take the GIL from the builder within 1 ms, not 5
    sys.setswitchinterval(0.001)
    # Block the stop signals before any thread starts (threads inherit the mask;
    # the server starts its builder) so that only the sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    state = State(args.mode, args.latency_ms, args.failures)
    server = StandinServer((args.host, args.port), state)
    port = server.server_address[1]

    #  A short poll interval: shutdown() waits for the loop to notice (tests stop us often)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                               name="serve", daemon=True)
    serving.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    host = "[%s]" % args.host if ":" in args.host else args.host
    print("standin listening on http://%s:%d" % (host, port), flush=True)

    signal.sigwait(stop_signals)
    state.stopping.set()                                      # ends latency waits and hangs
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
