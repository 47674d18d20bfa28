"""The sandbox X held to X's own OpenAPI description of API v2 (openapi-2.166.json): every kind of answer the
sandbox gives on each endpoint carebot uses (bot.channel.x_client), success and error, is checked over real HTTP
for its status, media type and body against the response schema the description gives for that path, method and
status; and a broken field in a valid answer is refused, so the check itself can fail.

The description is read from PROJECT_ROOT/../shared/data/x-api/, or from the directory named by
CAREBOT_TEST_X_OPENAPI_DIR or CAREBOT_X_OPENAPI_DIR (tests/conftest.py removes CAREBOT_* variables other than
CAREBOT_TEST_* before the tests start, so from pytest only the first reaches this module); without it the tests
skip, naming the path.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7

from bot.channel.x_client import DM_EVENT_FIELDS, PAGE_SIZE, TWEET_FIELDS, USER_FIELDS
from bot.sandbox.store import snowflake_at
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import PROJECT_ROOT

SPEC_NAME = "openapi-2.166.json"
SPEC_URI = "urn:x-api:openapi-2.166"
_dir = os.environ.get("CAREBOT_TEST_X_OPENAPI_DIR") or os.environ.get("CAREBOT_X_OPENAPI_DIR")
SPEC_PATH = (Path(_dir) if _dir else PROJECT_ROOT.parent / "shared" / "data" / "x-api") / SPEC_NAME

pytestmark = pytest.mark.skipif(
    not SPEC_PATH.is_file(),
    reason=f"X's OpenAPI description is not at {SPEC_PATH} (see ../shared/data/README.md; "
    "CAREBOT_TEST_X_OPENAPI_DIR names another directory)",
)

AUTH = {"Authorization": 'OAuth oauth_consumer_key="sandbox"'}  # the sandbox takes any OAuth 1.0a header
TWEET_PARAMS = {
    "tweet.fields": ",".join(TWEET_FIELDS),
    "expansions": "author_id",
    "user.fields": ",".join(USER_FIELDS),
    "max_results": str(PAGE_SIZE),
}
DM_PARAMS = {
    "event_types": "MessageCreate",
    "dm_event.fields": ",".join(DM_EVENT_FIELDS),
    "expansions": "sender_id",
    "user.fields": ",".join(USER_FIELDS),
    "max_results": str(PAGE_SIZE),
}


def _translated(schema: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema draft 7, in the two places where they differ for X's description:

    - `nullable: true` (OpenAPI 3.0) is JSON Schema's `"type": [T, "null"]` (and `null` among an `enum`'s values);
      2.166 uses none, the translation is there for other versions;
    - `discriminator` is not a JSON Schema keyword. X's `Problem` names by its `type` the schema a problem of that
      type must also match (`InvalidRequestProblem`, `ResourceNotFoundProblem`, …), each of which is
      `allOf: [Problem, {its own fields}]`. The translation keeps Problem's own properties as `Problem__base` and
      makes `Problem` that base plus one `if type is T then the mapped schema` per entry; the mapped schemas refer
      to the base, not back to Problem, so nothing loops. A type missing from the mapping gets the base alone.

    Everything else is taken as it is: `format` is checked for date-time (the only one carebot reads), and
    `example` and `description` are annotations to JSON Schema, as to OpenAPI.
    """
    spec = copy.deepcopy(schema)
    prefix = "#/components/schemas/"

    def nullable(node: Any) -> None:
        if isinstance(node, dict):
            if node.pop("nullable", False) is True:
                if isinstance(node.get("type"), str):
                    node["type"] = [node["type"], "null"]
                if isinstance(node.get("enum"), list):
                    node["enum"] = [*node["enum"], None]
            for child in node.values():
                nullable(child)
        elif isinstance(node, list):
            for child in node:
                nullable(child)

    nullable(spec)
    schemas = spec["components"]["schemas"]
    for name in [name for name, body in schemas.items() if "discriminator" in body and "oneOf" not in body]:
        body = schemas[name]
        discriminator = body.pop("discriminator")
        base = f"{name}__base"
        schemas[base] = body
        key = discriminator["propertyName"]
        branches = []
        for value, target in sorted(discriminator.get("mapping", {}).items()):
            target_schema = schemas[target.removeprefix(prefix)]
            for part in target_schema.get("allOf", []):
                if part.get("$ref") == prefix + name:
                    part["$ref"] = prefix + base
            branches.append({
                "if": {"properties": {key: {"const": value}}, "required": [key]},
                "then": {"$ref": target},
            })  # fmt: skip
        schemas[name] = {"allOf": [{"$ref": prefix + base}, *branches]}
    return spec


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # `type` says what else is wrong
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value and moment.tzinfo is not None


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_date_time)


@cache
def spec() -> dict[str, Any]:
    return _translated(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


@cache
def registry() -> Registry[Any]:
    return Registry().with_resource(SPEC_URI, DRAFT7.create_resource(spec()))


def _schema_for(path: str, method: str, status: int, media_type: str) -> dict[str, Any]:
    """The response schema of X's description for path, method and status (the status's own, else `default`) in
    this media type; fails the test when the description allows no such answer."""
    operation = spec()["paths"][path][method.lower()]
    responses = operation["responses"]
    response = responses.get(str(status)) or responses.get("default")
    assert response is not None, f"{method} {path}: X's description has no response {status} (has {list(responses)})"
    content = response.get("content", {})
    assert media_type in content, f"{method} {path} {status}: media type {media_type} is not one of {list(content)}"
    return dict(content[media_type]["schema"])


def validator_for(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    resolved = {"$ref": SPEC_URI + schema["$ref"]} if "$ref" in schema else schema
    return jsonschema.Draft7Validator(resolved, registry=registry(), format_checker=FORMATS)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def problems(body: Any, schema: dict[str, Any]) -> list[str]:
    """Every way the body breaks the schema, as "where: what" lines (empty when it is valid)."""
    errors = sorted(validator_for(schema).iter_errors(body), key=lambda error: list(error.absolute_path))
    return [f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}" for error in errors]


def check(response: httpx.Response, path: str, status: int) -> dict[str, Any]:
    """Assert the answer has `status` and is what X's description says X answers there; returns its body."""
    assert response.status_code == status, f"{response.request.method} {path}: {response.status_code} {response.text}"
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    schema = _schema_for(path, response.request.method, status, media_type)
    body = response.json()
    broken = problems(body, schema)
    assert not broken, f"{response.request.method} {path} {status} does not match X's description:\n" + "\n".join(
        broken
    )
    return dict(body)


# the sandbox, with a little of everything


@dataclass(frozen=True)
class World:
    sandbox: RunningSandbox
    client: httpx.Client
    me_id: str
    customer_id: str
    mention_ids: list[str]
    dm_ids: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        running_sandbox(tmp_path_factory.mktemp("openapi") / "sandbox-x.db") as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=10.0) as client,
    ):
        me_id = client.get("/2/users/me", headers=AUTH).json()["data"]["id"]
        mention_ids: list[str] = []
        customer_id = ""
        for number in range(3):
            posted = client.post(
                "/sandbox/customer-tweets",
                json={"username": "ann_openapi", "text": f"@KestrelCare is fibre down in Leeds? #{number}"},
            ).json()
            mention_ids.append(posted["id"])
            customer_id = posted["author_id"]
        reply = client.post(
            "/sandbox/customer-tweets",
            json={"username": "bob_openapi", "text": "@KestrelCare same here", "in_reply_to_tweet_id": mention_ids[0]},
        ).json()
        mention_ids.append(reply["id"])
        long_post = {"username": "dee_openapi", "text": "@KestrelCare " + "the router light is red again. " * 20}
        mention_ids.append(client.post("/sandbox/customer-tweets", json=long_post).json()["id"])
        client.post("/sandbox/customer-tweets", json={"username": "cy_openapi", "text": "kestrel outage again"})
        dm_ids = [
            client.post("/sandbox/customer-dms", json={"username": "ann_openapi", "text": f"my number {n}"}).json()[
                "id"
            ]
            for n in range(3)
        ]
        yield World(sandbox, client, me_id, customer_id, mention_ids, dm_ids)


@pytest.fixture
def x(world: World) -> Iterator[httpx.Client]:
    yield world.client
    assert world.client.delete("/sandbox/faults").status_code == 200


def set_fault(x: httpx.Client, endpoint: str, kind: str, **extra: Any) -> None:
    response = x.post("/sandbox/faults", json={"endpoint": endpoint, "kind": kind, "count": 1, **extra})
    assert response.status_code == 201, response.text


# users/me


def test_users_me(x: httpx.Client, world: World) -> None:
    body = check(x.get("/2/users/me", params={"user.fields": ",".join(USER_FIELDS)}, headers=AUTH), "/2/users/me", 200)
    assert body["data"]["id"] == world.me_id and body["data"]["username"] == "KestrelCare"
    body = check(x.get("/2/users/me", params={"user.fields": "created_at,protected"}, headers=AUTH), "/2/users/me", 200)
    assert "created_at" in body["data"]


def test_users_me_errors(x: httpx.Client) -> None:
    body = check(x.get("/2/users/me"), "/2/users/me", 401)  # no credentials
    assert body["title"] == "Unauthorized"
    check(x.get("/2/users/me", params={"user.fields": "favourite_colour"}, headers=AUTH), "/2/users/me", 400)
    for kind, status in (("429", 429), ("429_no_reset", 429), ("500", 500), ("503", 503)):
        set_fault(x, "users_me", kind)
        check(x.get("/2/users/me", headers=AUTH), "/2/users/me", status)


# mentions


def test_mentions_pages(x: httpx.Client, world: World) -> None:
    path = f"/2/users/{world.me_id}/mentions"
    body = check(x.get(path, params={**TWEET_PARAMS, "max_results": "5"}, headers=AUTH), "/2/users/{id}/mentions", 200)
    assert [tweet["id"] for tweet in body["data"]] == world.mention_ids[::-1]
    assert body["includes"]["users"] and body["meta"]["result_count"] == len(world.mention_ids)
    first = check(
        x.get(path, params={**TWEET_PARAMS, "max_results": "5", "since_id": world.mention_ids[0]}, headers=AUTH),
        "/2/users/{id}/mentions", 200,
    )  # fmt: skip
    assert len(first["data"]) == len(world.mention_ids) - 1
    paged = check(x.get(path, params={"max_results": "5"}, headers=AUTH), "/2/users/{id}/mentions", 200)
    assert "next_token" not in paged["meta"]
    small = {"expansions": "author_id,in_reply_to_user_id,referenced_tweets.id", "tweet.fields": "referenced_tweets"}
    two = x.get(path, params={**small, "max_results": "5", "until_id": world.mention_ids[2]}, headers=AUTH)
    assert "next_token" not in check(two, "/2/users/{id}/mentions", 200)["meta"]
    everything = {"tweet.fields": "author_id,created_at,conversation_id,in_reply_to_user_id,note_tweet,entities"}
    long_post = check(x.get(path, params=everything, headers=AUTH), "/2/users/{id}/mentions", 200)["data"][0]
    assert long_post["id"] == world.mention_ids[-1] and long_post["note_tweet"]["text"].endswith("red again. ")


def test_mentions_without_any(x: httpx.Client, world: World) -> None:
    newest = world.mention_ids[-1]
    params = {**TWEET_PARAMS, "since_id": newest}
    body = check(x.get(f"/2/users/{world.me_id}/mentions", params=params, headers=AUTH), "/2/users/{id}/mentions", 200)
    assert "data" not in body and body["meta"]["result_count"] == 0


def test_mentions_errors(x: httpx.Client, world: World) -> None:
    path, spec_path = f"/2/users/{world.me_id}/mentions", "/2/users/{id}/mentions"
    unknown = check(x.get("/2/users/1234567/mentions", headers=AUTH), spec_path, 200)  # X: 200 with errors
    assert unknown["errors"][0]["type"].endswith("/resource-not-found")
    for params in ({"since_id": "abc"}, {"max_results": "1000"}, {"pagination_token": "nope"}, {"tweet.fields": "x"}):
        body = check(x.get(path, params=params, headers=AUTH), spec_path, 400)
        assert body["type"].endswith("/invalid-request"), body
    check(x.get("/2/users/not-a-number/mentions", headers=AUTH), spec_path, 400)
    check(x.get(path), spec_path, 401)
    for kind, status in (("429", 429), ("429_usage_cap", 429), ("402", 402), ("500", 500)):
        set_fault(x, "mentions", kind)
        check(x.get(path, params=TWEET_PARAMS, headers=AUTH), spec_path, status)


# recent search


def test_search(x: httpx.Client, world: World) -> None:
    path = "/2/tweets/search/recent"
    body = check(x.get(path, params={**TWEET_PARAMS, "query": "kestrel"}, headers=AUTH), path, 200)
    assert any("kestrel outage" in tweet["text"] for tweet in body["data"])
    paged = check(x.get(path, params={"query": "@KestrelCare", "max_results": "10"}, headers=AUTH), path, 200)
    assert paged["meta"]["result_count"] == len(paged.get("data", []))
    none = check(x.get(path, params={**TWEET_PARAMS, "query": "zebra crossing"}, headers=AUTH), path, 200)
    assert "data" not in none and none["meta"]["result_count"] == 0
    since = x.get(path, params={**TWEET_PARAMS, "query": "kestrel", "since_id": world.mention_ids[0]}, headers=AUTH)
    check(since, path, 200)


def test_search_errors(x: httpx.Client) -> None:
    path = "/2/tweets/search/recent"
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    stale = check(
        x.get(path, params={**TWEET_PARAMS, "query": "kestrel", "since_id": str(snowflake_at(eight_days_ago))},
              headers=AUTH),
        path, 400,
    )  # fmt: skip
    assert "since_id" in stale["errors"][0]["parameters"]
    old_start = eight_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    for params in (
        {"query": "kestrel", "start_time": old_start},
        {"query": "kestrel", "start_time": "yesterday"},
        {"query": "kestrel OR"},
        {},
        {"query": "kestrel", "max_results": "5"},
        {"query": "kestrel", "next_token": "nope"},
    ):
        check(x.get(path, params=params, headers=AUTH), path, 400)
    check(x.get(path, params={"query": "kestrel"}), path, 401)
    for kind in ("429", "429_usage_cap", "402", "503"):
        set_fault(x, "search", kind)
        check(x.get(path, params={"query": "kestrel"}, headers=AUTH), path, int(kind[:3]))


# tweet lookup, our own posts


def test_tweet_lookup(x: httpx.Client, world: World) -> None:
    ids = [*world.mention_ids[:2], "1234567"]
    params = {"ids": ",".join(ids), "tweet.fields": ",".join(TWEET_FIELDS), "expansions": "author_id"}
    body = check(x.get("/2/tweets", params=params, headers=AUTH), "/2/tweets", 200)
    assert len(body["data"]) == 2 and body["errors"][0]["resource_id"] == "1234567"
    missing = check(x.get("/2/tweets", params={"ids": "1234567"}, headers=AUTH), "/2/tweets", 200)
    assert "data" not in missing and missing["errors"]
    check(x.get("/2/tweets", params={"ids": "x,y"}, headers=AUTH), "/2/tweets", 400)
    check(x.get("/2/tweets", params={"ids": "1"}), "/2/tweets", 401)
    set_fault(x, "tweet_lookup", "500")
    check(x.get("/2/tweets", params={"ids": "1"}, headers=AUTH), "/2/tweets", 500)


def test_own_tweets(x: httpx.Client, world: World) -> None:
    posted = x.post("/2/tweets", json={"text": "Our own post for the timeline"}, headers=AUTH)
    check(posted, "/2/tweets", 201)
    path = f"/2/users/{world.me_id}/tweets"
    body = check(x.get(path, params=TWEET_PARAMS, headers=AUTH), "/2/users/{id}/tweets", 200)
    assert posted.json()["data"]["id"] in [tweet["id"] for tweet in body["data"]]
    check(x.get("/2/users/1234567/tweets", headers=AUTH), "/2/users/{id}/tweets", 200)
    check(x.get(path, params={"since_id": "-1"}, headers=AUTH), "/2/users/{id}/tweets", 400)
    set_fault(x, "user_tweets", "429")
    check(x.get(path, headers=AUTH), "/2/users/{id}/tweets", 429)


# posting


def test_post_tweet(x: httpx.Client, world: World) -> None:
    reply = {
        "text": "Sorry to hear that, we are looking into it ^bot",
        "reply": {"in_reply_to_tweet_id": world.mention_ids[1]},
    }
    body = check(x.post("/2/tweets", json=reply, headers=AUTH), "/2/tweets", 201)
    assert body["data"]["text"].endswith("^bot")
    duplicate = check(x.post("/2/tweets", json=reply, headers=AUTH), "/2/tweets", 403)
    assert "duplicate" in duplicate["detail"]


def test_post_tweet_errors(x: httpx.Client) -> None:
    for body in (
        {"text": "x" * 281},
        {"text": ""},
        {"text": "a reply", "reply": {"in_reply_to_tweet_id": "abc"}},
        {"text": "a reply to nothing", "reply": {"in_reply_to_tweet_id": "1234567"}},
    ):
        check(x.post("/2/tweets", json=body, headers=AUTH), "/2/tweets", 400)
    check(x.post("/2/tweets", content=b"{not json", headers={**AUTH, "content-type": "application/json"}),
          "/2/tweets", 400)  # fmt: skip
    check(x.post("/2/tweets", json={"text": "hello"}), "/2/tweets", 401)
    for kind in ("429", "429_24h", "429_usage_cap", "402", "500", "503"):
        set_fault(x, "create_tweet", kind)
        check(x.post("/2/tweets", json={"text": f"fault {kind}"}, headers=AUTH), "/2/tweets", int(kind[:3]))


# direct messages


def test_dm_events(x: httpx.Client, world: World) -> None:
    body = check(x.get("/2/dm_events", params=DM_PARAMS, headers=AUTH), "/2/dm_events", 200)
    assert {event["id"] for event in body["data"]} >= set(world.dm_ids)
    assert body["includes"]["users"][0]["id"] == world.customer_id
    paged = check(x.get("/2/dm_events", params={**DM_PARAMS, "max_results": "1"}, headers=AUTH), "/2/dm_events", 200)
    token = paged["meta"]["next_token"]
    check(x.get("/2/dm_events", params={"pagination_token": token}, headers=AUTH), "/2/dm_events", 200)
    joins = check(x.get("/2/dm_events", params={"event_types": "ParticipantsJoin"}, headers=AUTH), "/2/dm_events", 200)
    assert "data" not in joins
    check(x.get("/2/dm_events", params={"dm_event.fields": "sender"}, headers=AUTH), "/2/dm_events", 400)
    check(x.get("/2/dm_events"), "/2/dm_events", 401)
    set_fault(x, "dm_events", "429")
    check(x.get("/2/dm_events", headers=AUTH), "/2/dm_events", 429)


def test_send_dm(x: httpx.Client, world: World) -> None:
    path, spec_path = (
        f"/2/dm_conversations/with/{world.customer_id}/messages",
        "/2/dm_conversations/with/{participant_id}/messages",
    )
    body = check(x.post(path, json={"text": "Please send us your account number here"}, headers=AUTH), spec_path, 201)
    assert body["data"]["dm_event_id"]
    check(x.post(path, json={"text": ""}, headers=AUTH), spec_path, 400)
    check(x.post("/2/dm_conversations/with/1234567/messages", json={"text": "hi"}, headers=AUTH), spec_path, 400)
    check(x.post(path, json={"text": "hi"}), spec_path, 401)
    for kind in ("429", "402", "500"):
        set_fault(x, "dm_send", kind)
        check(x.post(path, json={"text": f"fault {kind}"}, headers=AUTH), spec_path, int(kind))


def test_no_such_endpoint(x: httpx.Client) -> None:
    """A path X's description does not have: the answer is still one of its Problems."""
    for response, status in (
        (x.get("/2/no-such-thing", headers=AUTH), 404),
        (x.delete("/2/dm_events", headers=AUTH), 405),
    ):
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/problem+json")
        assert not problems(response.json(), component("Problem")), response.text


# the check can fail


def test_a_broken_field_is_refused(x: httpx.Client, world: World) -> None:
    """Valid answers, each broken in one field, fail validation, naming the field."""
    path, spec_path = f"/2/users/{world.me_id}/mentions", "/2/users/{id}/mentions"
    mentions = check(x.get(path, params=TWEET_PARAMS, headers=AUTH), spec_path, 200)
    schema = _schema_for(spec_path, "GET", 200, "application/json")

    broken = copy.deepcopy(mentions)
    broken["data"][0]["id"] = int(broken["data"][0]["id"])  # an id as a number
    assert any(line.startswith("data/0/id:") for line in problems(broken, schema))
    broken = copy.deepcopy(mentions)
    broken["data"][0]["created_at"] = "yesterday"
    assert any(line.startswith("data/0/created_at:") for line in problems(broken, schema))
    broken = copy.deepcopy(mentions)
    del broken["includes"]["users"][0]["username"]  # a user without a required field
    assert any("'username' is a required property" in line for line in problems(broken, schema))
    broken = copy.deepcopy(mentions)
    broken["data"][0]["note_tweet"] = {"text": ["a long post"]}
    assert any(line.startswith("data/0/note_tweet/text:") for line in problems(broken, schema))
    broken = copy.deepcopy(mentions)
    broken["data"][0]["referenced_tweets"] = [{"type": "answered", "id": world.mention_ids[0]}]
    assert problems(broken, schema)

    me = check(x.get("/2/users/me", headers=AUTH), "/2/users/me", 200)
    del me["data"]["id"]
    assert any("'id' is a required property" in line for line in problems(me, component("Get2UsersMeResponse")))

    posted = check(x.post("/2/tweets", json={"text": "A post to break"}, headers=AUTH), "/2/tweets", 201)
    posted["data"]["id"] = "12ab"
    assert any(line.startswith("data/id:") for line in problems(posted, component("TweetCreateResponse")))

    refused = check(x.get(path, params={"since_id": "abc"}, headers=AUTH), spec_path, 400)
    error_schema = _schema_for(spec_path, "GET", 400, "application/problem+json")
    del refused["title"]
    assert any("'title' is a required property" in line for line in problems(refused, error_schema))
    refused = check(x.get(path, params={"since_id": "abc"}, headers=AUTH), spec_path, 400)
    refused["errors"][0]["parameters"]["since_id"] = "abc"  # X names the values in a list
    assert any(line.startswith("errors/0/parameters/since_id:") for line in problems(refused, error_schema))
    unknown = check(x.get("/2/users/1234567/mentions", headers=AUTH), spec_path, 200)
    del unknown["errors"][0]["resource_type"]  # ResourceNotFoundProblem's own field, through the discriminator
    assert any("'resource_type' is a required property" in line for line in problems(unknown, schema))
