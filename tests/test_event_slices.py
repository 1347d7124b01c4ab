"""Each event as its own slice and back: equal to the parsed event, and old inbox rows still read.

The inbox stores one slice per event and the turn runner rebuilds the event from it, so a
delivery is parsed once. Rebuilt events must equal the ones `parse_webhook` made, over Meta's
real bodies, the shapes of test_events.py and mutations of both; rows an earlier version
stored as one-event webhook bodies must still give their event after an upgrade.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.crypto import Keyring, MasterKey, seal
from bot.runtime.inbox import open_event, sealed_rows
from bot.simulator import webhooks
from bot.store import inbox as inbox_store
from bot.webhook.intake import load_json
from bot.whatsapp.events import (
    Event,
    InboundMessage,
    Party,
    PayloadError,
    PreferenceUpdate,
    StatusUpdate,
    Unhandled,
    ValueErrors,
    event_from_slice,
    event_to_slice,
    parse_webhook,
)
from tests.conftest import PHONE_NUMBER_ID, Bot
from tests.test_events import (
    BSUID,
    PAYLOADS,
    SEEDS,
    change,
    contact,
    envelope,
    json_values,
    msg,
    mutate,
    paths,
    preferences_value,
    small_json,
    status,
    value,
)

KEYRING = Keyring([MasterKey("k1", b"\x01" * 32)], b"\x02" * 32)
INBOX_KEY, _ = KEYRING.new_data_key("system-inbox")


def corpus() -> list[Path]:
    return sorted(PAYLOADS.glob("*.json")) if PAYLOADS.is_dir() else []


def as_delivered(doc: Any) -> Any:
    """`doc` as the webhook route reads it from bytes (NaN and huge numbers scrubbed)."""
    return load_json(json.dumps(doc).encode())


def assert_round_trips(body: Any) -> list[Event]:
    """Every event of `body` rebuilds from its slice into an equal event."""
    try:
        events = parse_webhook(body).events
    except PayloadError:
        return []
    for event in events:
        assert event_from_slice(event_to_slice(event)) == event
    return events


# --- the real bodies and the shapes test_events.py parses ------------------------------------


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name[:2])
def test_every_event_of_every_sample_round_trips(path: Path) -> None:
    events = assert_round_trips(orjson.loads(path.read_bytes()))
    assert events, f"{path.name} has no events"


def shapes() -> list[Any]:
    """The single-item shapes test_events.py checks, one body each."""
    no_from = msg("text", {"body": "x"})
    del no_from["from"]
    no_type = msg("text", {"body": "hello"})
    del no_type["type"]
    bsuid_status = status(recipient_user_id=BSUID)
    del bsuid_status["recipient_id"]
    no_recipient = status("failed")
    del no_recipient["recipient_id"]
    bsuid_contact = {"profile": {"name": "Pablo M.", "username": "@pablomorales"}, "user_id": BSUID}
    messages = [
        msg("text", {"body": "Does it come in another color?"}),
        msg("image", {"caption": "Taj Mahal", "mime_type": "image/jpeg", "id": "1003383421387256"}),
        msg("audio", {"id": "55", "mime_type": "audio/ogg; codecs=opus"}),
        msg(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "cancel-button", "title": "Cancel"}},
            context={"from": "15550783881", "id": "wamid.quoted"},
        ),
        msg("interactive", {"list_reply": {"id": "a", "title": "A"}}),
        msg("interactive", {"type": "nfm_reply", "nfm_reply": {"name": "flow"}}),
        msg("button", {"payload": "Unsubscribe", "text": "Unsubscribe"}, context={"id": "t"}),
        msg("reaction", {"message_id": "wamid.ours", "emoji": "👍"}),
        msg("reaction", {"message_id": "wamid.ours", "emoji": ""}),
        msg("unsupported", {"type": "edit"}, errors=[{"code": 131051, "error_data": {}}]),
        msg("system", {"type": "user_changed_number", "wa_id": "12195555358"}),
        msg("text", {"body": "Hi"}, referral={"source_type": "ad", "ctwa_clid": "A"}),
        msg("text", {"body": "fwd"}, context={"forwarded": True}),
        msg("poll_vote", {"option": 2}),
        no_type,
        no_from,
        msg("text", {"body": "שלום\u200f \x00 👩\u200d👩\u200d👧"}, **{"from": "+4917"}),
        msg("text", {"body": "int ids"}, id=12345, **{"from": 491713920042}),
        {**msg("text", {"body": "x"}), "from_user_id": BSUID},
    ]
    contact_lists: list[list[Any]] = [
        [contact()],
        [],
        [contact("1"), contact(), contact(name="Other")],
        [contact(None, user_id=BSUID), bsuid_contact],
        [{"wa_id": "+491713920042", "username": "", "profile": {"name": 7}}],
        [{"wa_id": "491713920042", "profile": {"username": ""}, "username": "@top"}],
    ]
    bodies = [
        envelope(change(value(messages=[m], contacts=c))) for m in messages for c in contact_lists
    ]
    statuses = [
        status("sent", pricing={"category": "marketing"}),
        status("failed", errors=[{"code": "131047", "title": "Re-engagement"}, "junk"]),
        status(conversation={"origin": {"type": "service"}}),
        bsuid_status,
        no_recipient,
        status("played"),
    ]
    bodies += [
        envelope(change(value(statuses=[s], contacts=c))) for s in statuses for c in contact_lists
    ]
    prefs = [
        {"wa_id": "16505551234", "category": "marketing_messages", "value": "stop", "timestamp": 1},
        {"user_id": BSUID, "category": "marketing_messages", "value": "resume"},
    ]
    bodies += [
        envelope(change(preferences_value(p, contacts=c), "user_preferences"))
        for p in prefs
        for c in [[contact("16505551234", name="Sheena")], [bsuid_contact], []]
    ]
    errors = [{"code": "130429", "title": "Rate limit hit", "error_data": {"details": "Too many"}}]
    bodies += [
        envelope(change(value(errors=errors))),
        envelope(change(value(errors=[{"href": "/x", "code": 1.0}, {"message": "m"}]))),
        envelope(change({"event": "APPROVED"}, field="account_update")),
        envelope({"value": {"something": 1}}, {"value": {"something": 1}, "field": 7}),
    ]
    return bodies


SHAPES = shapes()


def test_every_shape_round_trips() -> None:
    kinds = set()
    for body in SHAPES:
        kinds |= {type(e) for e in assert_round_trips(body)}
    assert kinds == {InboundMessage, StatusUpdate, PreferenceUpdate, ValueErrors, Unhandled}


def test_a_party_reads_back_exactly_as_it_was() -> None:
    """The contact a slice holds gives back name, username ("" too) and both ids."""
    cases = [
        ([{"wa_id": "491713920042", "username": ""}], Party("491713920042", None, None, "")),
        ([contact(user_id=BSUID)], Party("491713920042", BSUID, "Sheena Nelson", None)),
        ([], Party("491713920042", None, None, None)),
    ]
    for contacts, party in cases:
        body = envelope(change(value(messages=[msg("text", {"body": "x"})], contacts=contacts)))
        (event,) = assert_round_trips(body)
        assert isinstance(event, InboundMessage)
        assert event.sender == party


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data())
def test_mutated_bodies_round_trip(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(SEEDS + SHAPES)))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths(doc)))
        action = data.draw(st.sampled_from(["delete", "replace", "wrap", "stringify"]))
        doc = mutate(doc, path, action, data.draw(small_json))
    assert_round_trips(as_delivered(doc))


@FAST
@given(st.lists(json_values, max_size=3), st.sampled_from(["messages", "user_preferences", "x"]))
def test_arbitrary_values_round_trip(values: list[Any], field: str) -> None:
    assert_round_trips(as_delivered(envelope(*(change(v, field) for v in values))))
    items = [{"messages": v, "statuses": v, "user_preferences": v, "contacts": v} for v in values]
    assert_round_trips(as_delivered(envelope(*(change(v) for v in items))))


def test_a_slice_is_not_a_delivery() -> None:
    """What is stored is the event's own items, not a rebuilt webhook body."""
    (event,) = parse_webhook(envelope(change(value(messages=[msg("text", {"body": "x"})])))).events
    stored = orjson.loads(event_to_slice(event))
    assert set(stored) == {"message", "contact", "phone_number_id"}
    assert stored["message"] == event.raw
    with pytest.raises(TypeError):
        event_to_slice("not an event")  # type: ignore[arg-type]


# --- rows an earlier version stored -----------------------------------------------------------


def old_contact(party: Party) -> dict[str, Any]:
    """The contact earlier versions wrote into a stored body."""
    profile = {"name": party.name, "username": party.username}
    c: dict[str, Any] = {"profile": {k: v for k, v in profile.items() if v is not None}}
    if party.wa_id:
        c["wa_id"] = party.wa_id
    if party.user_id:
        c["user_id"] = party.user_id
    return c


def old_body(event: Event) -> bytes:
    """The one-event webhook body earlier versions stored in the inbox for `event`."""
    if isinstance(event, InboundMessage):
        field = "messages"
        items = {"contacts": [old_contact(event.sender)], "messages": [event.raw]}
    elif isinstance(event, StatusUpdate):
        field, items = "messages", {"statuses": [event.raw]}
    else:
        assert isinstance(event, PreferenceUpdate)
        field, items = "user_preferences", {"user_preferences": [event.raw]}
    v = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": event.phone_number_id}}
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "", "changes": [{"field": field, "value": v | items}]}],
    }
    return orjson.dumps(body)


def stored_events() -> list[Event]:
    bodies = [orjson.loads(p.read_bytes()) for p in corpus()] + SHAPES
    kinds = (InboundMessage, StatusUpdate, PreferenceUpdate)
    return [e for b in bodies for e in parse_webhook(b).events if isinstance(e, kinds)]


def test_old_bodies_still_give_their_event() -> None:
    events = stored_events()
    assert {type(e) for e in events} == {InboundMessage, StatusUpdate, PreferenceUpdate}
    for event in events:
        old = old_body(event)
        assert event_from_slice(old) == parse_webhook(orjson.loads(old)).events[0]
        # Messages kept their sender's contact, all but an empty username (read as none then).
        if isinstance(event, InboundMessage) and event.sender.username != "":
            assert event_from_slice(old) == event


def test_inbox_rows_open_into_the_parsed_event() -> None:
    """sealed_rows then open_event, as the webhook and the turn runner do, new rows and old."""
    for event in stored_events():
        rows, _ = sealed_rows(KEYRING, INBOX_KEY, [event], 0.0)
        (row,) = rows
        assert open_event(INBOX_KEY, row["event_key"], row["payload"]) == event
        where = f"inbox/payload/{row['event_key']}"
        sealed_old = seal(INBOX_KEY, old_body(event), where)
        as_before = parse_webhook(orjson.loads(old_body(event))).events[0]
        assert open_event(INBOX_KEY, row["event_key"], sealed_old) == as_before


async def test_a_turn_left_by_an_earlier_version_is_answered(bot: Bot) -> None:
    """Work acknowledged before an upgrade, stored as a whole body, still gets its turn."""
    body, _ = webhooks.message(PHONE_NUMBER_ID, "+447700900123", webhooks.text("hello"))
    (event,) = parse_webhook(body).events
    services = bot.services
    inbox_key = services.webhook.inbox_key
    assert inbox_key is not None
    rows, contacts = sealed_rows(services.keyring, inbox_key, [event], bot.clock())
    (row,) = rows
    row["payload"] = seal(inbox_key, old_body(event), f"inbox/payload/{row['event_key']}")
    await services.db.write(inbox_store.accept, rows)
    services.turns.notify(contacts)
    (reply,) = await bot.replies(1)
    assert reply.to == "447700900123"
    await bot.idle()
