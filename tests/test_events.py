"""Tests for bot.whatsapp.events: every webhook shape Meta sends, and that parsing never raises.

Payloads here are small literals written from the facts the shared samples show (see
../shared/meta-samples/README.md); the corpus tests read the samples themselves when present.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.whatsapp.events import (
    InboundMessage,
    MetaError,
    ParsedDelivery,
    Party,
    PayloadError,
    PreferenceUpdate,
    StatusUpdate,
    Unhandled,
    ValueErrors,
    parse_webhook,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "meta-samples"
PAYLOADS = SAMPLES / "payloads"
NO_SAMPLES = f"shared Meta samples not found at {PAYLOADS} (checkout without ../shared)"

PNID = "106540352242922"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
WAMID_2 = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
BSUID = "US.13491208655302741918"


# --- builders -----------------------------------------------------------------------------------


def envelope(*changes: dict[str, Any]) -> dict[str, Any]:
    """One entry holding the given changes."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": list(changes)}],
    }


def change(value: Any, field: str = "messages") -> dict[str, Any]:
    return {"value": value, "field": field}


def value(
    messages: list[Any] | None = None,
    statuses: list[Any] | None = None,
    contacts: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    v: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
    }
    if contacts is not None:
        v["contacts"] = contacts
    if messages is not None:
        v["messages"] = messages
    if statuses is not None:
        v["statuses"] = statuses
    v.update(extra)
    return v


def contact(wa_id: str | None = "491713920042", name: str = "Sheena Nelson", **extra: Any) -> dict:
    c: dict[str, Any] = {"profile": {"name": name}}
    if wa_id is not None:
        c["wa_id"] = wa_id
    c.update(extra)
    return c


def msg(mtype: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "from": "491713920042",
        "id": WAMID,
        "timestamp": "1749416383",
        "type": mtype,
    }
    if content is not None:
        m[mtype] = content
    m.update(extra)
    return m


def one_message(m: dict[str, Any], contacts: list[Any] | None = None) -> InboundMessage:
    contacts = [contact()] if contacts is None else contacts
    parsed = parse_webhook(envelope(change(value(messages=[m], contacts=contacts))))
    assert parsed.skipped == 0
    (event,) = parsed.events
    assert isinstance(event, InboundMessage)
    return event


def status(state: str = "delivered", **extra: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "id": WAMID_2,
        "status": state,
        "timestamp": "1750263773",
        "recipient_id": "447700900123",
    }
    s.update(extra)
    return s


def one_status(s: dict[str, Any], contacts: list[Any] | None = None) -> StatusUpdate:
    parsed = parse_webhook(envelope(change(value(statuses=[s], contacts=contacts))))
    assert parsed.skipped == 0
    (event,) = parsed.events
    assert isinstance(event, StatusUpdate)
    return event


# --- inbound messages ---------------------------------------------------------------------------


def test_text_message_with_contact_name() -> None:
    m = msg("text", {"body": "Does it come in another color?"})
    event = one_message(m)
    assert event.id == WAMID
    assert event.phone_number_id == PNID
    assert event.timestamp == 1749416383
    assert event.type == "text"
    assert event.text == "Does it come in another color?"
    assert event.sender == Party("491713920042", None, "Sheena Nelson", None)
    assert event.sender.key == "wa:491713920042"
    assert event.reply_id is event.media_id is event.context_id is event.referral is None
    assert event.errors == ()
    assert event.raw is m
    assert event.is_user_content


@pytest.mark.parametrize("kind", ["image", "video", "document"])
def test_media_with_caption(kind: str) -> None:
    content = {
        "caption": "Taj Mahal",
        "mime_type": "image/jpeg",
        "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        "id": "1003383421387256",
        "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
    }
    event = one_message(msg(kind, content))
    assert (event.type, event.text) == (kind, "Taj Mahal")
    assert (event.media_id, event.media_mime) == ("1003383421387256", "image/jpeg")


@pytest.mark.parametrize("kind", ["audio", "sticker"])
def test_media_without_caption(kind: str) -> None:
    event = one_message(msg(kind, {"id": "55", "mime_type": "audio/ogg; codecs=opus"}))
    assert event.text is None
    assert (event.media_id, event.media_mime) == ("55", "audio/ogg; codecs=opus")


def test_interactive_button_reply_with_context() -> None:
    m = msg(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "cancel-button", "title": "Cancel"}},
        context={"from": "15550783881", "id": "wamid.quoted"},
    )
    event = one_message(m)
    assert (event.text, event.reply_id, event.context_id) == (
        "Cancel",
        "cancel-button",
        "wamid.quoted",
    )


def test_interactive_list_reply() -> None:
    reply = {"id": "priority_express", "title": "Priority Mail Express", "description": "Next Day"}
    event = one_message(msg("interactive", {"type": "list_reply", "list_reply": reply}))
    assert (event.text, event.reply_id) == ("Priority Mail Express", "priority_express")


def test_interactive_reply_found_without_inner_type() -> None:
    event = one_message(msg("interactive", {"list_reply": {"id": "a", "title": "A"}}))
    assert (event.text, event.reply_id) == ("A", "a")


def test_interactive_flow_reply_has_no_title() -> None:
    flow = {
        "type": "nfm_reply",
        "nfm_reply": {"name": "flow", "body": "Sent", "response_json": "{}"},
    }
    event = one_message(msg("interactive", flow))
    assert (event.type, event.text, event.reply_id) == ("interactive", None, None)


def test_template_quick_reply_button() -> None:
    m = msg("button", {"payload": "Unsubscribe", "text": "Unsubscribe"}, context={"id": "wamid.t"})
    event = one_message(m)
    assert (event.type, event.text, event.reply_id) == ("button", "Unsubscribe", "Unsubscribe")
    assert event.context_id == "wamid.t"


def test_reaction_with_emoji_is_not_user_content() -> None:
    event = one_message(msg("reaction", {"message_id": "wamid.ours", "emoji": "👍"}))
    assert (event.reaction_to, event.reaction_emoji) == ("wamid.ours", "👍")
    assert event.text is None
    assert not event.is_user_content


@pytest.mark.parametrize(
    "reaction", [{"message_id": "wamid.ours"}, {"message_id": "wamid.ours", "emoji": ""}]
)
def test_reaction_removed_has_no_emoji(reaction: dict[str, Any]) -> None:
    event = one_message(msg("reaction", reaction))
    assert (event.reaction_to, event.reaction_emoji) == ("wamid.ours", None)
    assert not event.is_user_content


def test_unsupported_keeps_errors_and_is_user_content() -> None:
    error = {
        "code": 131051,
        "title": "Message type unknown",
        "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."},
    }
    event = one_message(msg("unsupported", {"type": "edit"}, errors=[error]))
    assert event.type == "unsupported"
    assert event.errors == (
        MetaError(
            code=131051,
            title="Message type unknown",
            message="Message type unknown",
            details="Message type is currently not supported.",
            href=None,
        ),
    )
    assert event.is_user_content


def test_system_user_changed_number_without_contacts() -> None:
    system = {
        "body": "User A changed from 16505551234 to 12195555358",
        "wa_id": "12195555358",
        "type": "user_changed_number",
    }
    m = msg("system", system, **{"from": "16505551234"})
    event = one_message(m, contacts=[])
    assert event.system_type == "user_changed_number"
    assert event.sender == Party("16505551234", None, None, None)
    assert event.text is None
    assert not event.is_user_content


def test_system_identity_changed() -> None:
    m = msg(
        "system",
        {"body": "User identity changed", "type": "customer_identity_changed"},
        identity={"acknowledged": True, "created_timestamp": "1697044706", "hash": "h"},
    )
    assert one_message(m).system_type == "customer_identity_changed"


def test_click_to_whatsapp_referral_is_kept() -> None:
    referral = {
        "source_url": "https://fb.me/abc",
        "source_id": "120200000000000",
        "source_type": "ad",
        "headline": "Summer sale",
        "body": "Chat with us",
        "media_type": "image",
        "image_url": "https://scontent.example/1.jpg",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4Xv",
    }
    event = one_message(msg("text", {"body": "Hi"}, referral=referral))
    assert event.referral == referral
    assert one_message(msg("text", {"body": "Hi"}, referral="junk")).referral is None


def test_referred_product_context() -> None:
    context = {"from": "15550783881", "id": "wamid.p", "referred_product": {"catalog_id": "1"}}
    assert one_message(msg("text", {"body": "Still available?"}, context=context)).context_id == (
        "wamid.p"
    )


def test_forwarded_context_without_id() -> None:
    event = one_message(msg("text", {"body": "fwd"}, context={"forwarded": True}))
    assert event.context_id is None


@pytest.mark.parametrize("kind", ["location", "contacts", "order", "request_welcome"])
def test_known_types_without_text(kind: str) -> None:
    event = one_message(msg(kind, {"anything": 1}))
    assert (event.type, event.text, event.media_id) == (kind, None, None)
    assert event.is_user_content


def test_unknown_type_is_kept() -> None:
    event = one_message(msg("poll_vote", {"option": 2}))
    assert event.type == "poll_vote"
    assert event.text is None
    assert event.is_user_content


def test_missing_type_is_inferred_from_content() -> None:
    m = msg("text", {"body": "hello"})
    del m["type"]
    event = one_message(m)
    assert (event.type, event.text) == ("text", "hello")
    m = msg("text")
    del m["type"]
    assert one_message(m).type == "unknown"


def test_strings_are_kept_exactly() -> None:
    body = "שלום\u200f \u202eabc\u202c \x00 nul 👩\u200d👩\u200d👧 \ud83d"
    event = one_message(
        msg("text", {"body": body}), contacts=[contact(name="\u200f\u0646\u0627\u0645\x00")]
    )
    assert event.text == body
    assert event.sender.name == "\u200f\u0646\u0627\u0645\x00"


# --- identity: phone numbers and BSUIDs ---------------------------------------------------------


def test_sender_by_bsuid_only() -> None:
    m = {
        "from_user_id": BSUID,
        "from_parent_user_id": "US.11815799212886844830",
        "id": WAMID,
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": "Does it come in another color?"},
    }
    bsuid_contact = {
        "profile": {"name": "Sheena Nelson", "username": "@realsheenanelson"},
        "user_id": BSUID,
        "parent_user_id": "US.11815799212886844830",
    }
    event = one_message(m, contacts=[contact("16505550000", name="Other"), bsuid_contact])
    assert event.sender == Party(None, BSUID, "Sheena Nelson", "@realsheenanelson")
    assert event.sender.key == f"bsuid:{BSUID}"


def test_sender_phone_is_completed_with_contact_user_id() -> None:
    c = contact("14155550123", name="Test Name", user_id=BSUID, parent_user_id="US.ENT.1")
    event = one_message(msg("text", {"body": "x"}, **{"from": "14155550123"}), contacts=[c])
    assert event.sender == Party("14155550123", BSUID, "Test Name", None)
    assert event.sender.key == "wa:14155550123"


def test_sender_matched_among_several_contacts() -> None:
    contacts = [contact("447700900123", name="UK"), contact("491713920042", name="DE")]
    assert one_message(msg("text", {"body": "x"}), contacts=contacts).sender.name == "DE"


def test_sender_without_matching_contact_has_no_name() -> None:
    event = one_message(msg("text", {"body": "x"}), contacts=[contact("447700900123")])
    assert event.sender == Party("491713920042", None, None, None)


def test_plus_prefix_and_int_phone_numbers_are_normalised() -> None:
    m = msg("text", {"body": "x"}, **{"from": "+491713920042"})
    assert one_message(m, contacts=[contact(491713920042)]).sender.name == "Sheena Nelson"  # type: ignore[arg-type]
    assert one_message(m).sender.key == "wa:491713920042"


def test_party_key() -> None:
    assert Party("4917", BSUID, None, None).key == "wa:4917"
    assert Party(None, BSUID, None, None).key == f"bsuid:{BSUID}"
    assert Party(None, None, None, None).key == ""


# --- statuses -----------------------------------------------------------------------------------


def test_status_sent_with_pricing_category() -> None:
    s = status(
        "sent",
        recipient_id="16505551234",
        conversation={
            "id": "c",
            "expiration_timestamp": "1750116480",
            "origin": {"type": "marketing"},
        },
        pricing={
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "marketing",
        },
    )
    event = one_status(s)
    assert (event.id, event.status, event.timestamp) == (WAMID_2, "sent", 1750263773)
    assert event.recipient == Party("16505551234", None, None, None)
    assert event.category == "marketing"
    assert event.phone_number_id == PNID
    assert event.raw is s


def test_status_category_falls_back_to_conversation_origin() -> None:
    assert one_status(status(conversation={"origin": {"type": "service"}})).category == "service"
    assert one_status(status("read")).category is None


@pytest.mark.parametrize("code", [131047, "131047", " 131047 ", 131047.0])
def test_failed_status_error_code_int_or_string(code: Any) -> None:
    error = {
        "code": code,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed."},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
    event = one_status(status("failed", errors=[error]))
    assert event.status == "failed"
    (err,) = event.errors
    assert err.code == 131047
    assert err.details == "More than 24 hours have passed."
    assert err.href.startswith("https://")  # type: ignore[union-attr]


def test_error_code_garbage_becomes_none() -> None:
    errors = [{"code": "n/a"}, {"code": None}, {"code": True}, "junk", {"error_data": "x"}]
    event = one_status(status("failed", errors=errors))
    assert [e.code for e in event.errors] == [None, None, None, None]
    assert event.errors[3].details is None


def test_status_to_bsuid_with_contacts_in_status_webhook() -> None:
    s = status(recipient_user_id=BSUID, parent_user_id="US.11815799212886844830")
    del s["recipient_id"]
    c = {"profile": {"name": "Pablo M.", "username": "@pablomorales"}, "user_id": BSUID}
    event = one_status(s, contacts=[c])
    assert event.recipient == Party(None, BSUID, "Pablo M.", "@pablomorales")
    assert event.recipient.key == f"bsuid:{BSUID}"


def test_status_without_recipient_is_kept() -> None:
    s = status("failed")
    del s["recipient_id"]
    event = one_status(s)
    assert event.recipient.key == ""
    assert one_status(s, contacts=[contact("447700900123")]).recipient.wa_id == "447700900123"


def test_unknown_or_missing_status_string() -> None:
    assert one_status(status("played")).status == "played"
    s = status()
    del s["status"]
    assert one_status(s).status == "unknown"


# --- value-level errors, preferences, unhandled fields ------------------------------------------


def test_value_level_errors() -> None:
    error = {
        "code": "130429",
        "title": "Rate limit hit",
        "message": "Rate limit hit",
        "error_data": {"details": "Too many messages"},
        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
    }
    parsed = parse_webhook(envelope(change(value(errors=[error]))))
    assert parsed.events == [
        ValueErrors(
            phone_number_id=PNID,
            errors=(
                MetaError(
                    130429,
                    "Rate limit hit",
                    "Rate limit hit",
                    "Too many messages",
                    "/documentation/business-messaging/whatsapp/support/error-codes",
                ),
            ),
        )
    ]


def test_value_errors_come_after_messages_and_statuses() -> None:
    v = value(
        messages=[msg("text", {"body": "x"})],
        statuses=[status()],
        contacts=[contact()],
        errors=[{"code": 1}],
    )
    kinds = [type(e) for e in parse_webhook(envelope(change(v))).events]
    assert kinds == [InboundMessage, StatusUpdate, ValueErrors]


def preferences_value(*prefs: dict[str, Any], contacts: list[Any] | None = None) -> dict:
    return value(contacts=contacts, user_preferences=list(prefs))


@pytest.mark.parametrize(
    ("pref", "timestamp"),
    [("stop", 1731705721), ("resume", "1731705721")],
)
def test_user_preferences(pref: str, timestamp: Any) -> None:
    p = {
        "wa_id": "16505551234",
        "detail": f"User requested to {pref} marketing messages",
        "category": "marketing_messages",
        "value": pref,
        "timestamp": timestamp,
    }
    v = preferences_value(p, contacts=[contact("16505551234", name="Sheena")])
    parsed = parse_webhook(envelope(change(v, field="user_preferences")))
    assert parsed.events == [
        PreferenceUpdate(
            phone_number_id=PNID,
            party=Party("16505551234", None, "Sheena", None),
            category="marketing_messages",
            value=pref,
            timestamp=1731705721,
            raw=p,
        )
    ]


def test_user_preferences_by_bsuid_and_without_identity() -> None:
    by_bsuid = {"user_id": BSUID, "category": "marketing_messages", "value": "stop"}
    nobody = {"category": "marketing_messages", "value": "stop", "timestamp": "1"}
    v = preferences_value(by_bsuid, nobody, "junk")  # type: ignore[arg-type]
    parsed = parse_webhook(envelope(change(v, field="user_preferences")))
    assert parsed.skipped == 2
    (event,) = parsed.events
    assert isinstance(event, PreferenceUpdate)
    assert event.party.key == f"bsuid:{BSUID}"
    assert event.timestamp == 0


@pytest.mark.parametrize(
    "field", ["account_update", "message_template_status_update", "history", "calls"]
)
def test_unhandled_fields(field: str) -> None:
    c = change({"event": "APPROVED", "message_template_id": 1}, field=field)
    assert parse_webhook(envelope(c)).events == [Unhandled(field=field, raw=c)]


def test_change_without_field() -> None:
    c: dict[str, Any] = {"value": value(messages=[msg("text", {"body": "x"})])}
    assert [type(e) for e in parse_webhook(envelope(c)).events] == [InboundMessage]
    c = {"value": {"something": 1}}
    assert parse_webhook(envelope(c)).events == [Unhandled(field="", raw=c)]
    c = {"value": {"something": 1}, "field": 7}
    assert parse_webhook(envelope(c)).events == [Unhandled(field="", raw=c)]


# --- batches and order --------------------------------------------------------------------------


def test_batches_keep_order_across_entries_changes_and_items() -> None:
    body = envelope(
        change(
            value(
                messages=[
                    msg("text", {"body": "1"}, id="m1"),
                    msg("reaction", {"message_id": "x", "emoji": "👍"}, id="m2"),
                ],
                contacts=[contact()],
            )
        ),
        change(value(statuses=[status(id="s1"), status(id="s2")])),
    )
    body["entry"].append(
        {
            "id": "2432658263680361",
            "changes": [
                change({"x": 1}, field="account_update"),
                change(value(messages=[msg("text", {"body": "3"}, id="m3")])),
            ],
        }
    )
    parsed = parse_webhook(body)
    labels = [getattr(e, "id", getattr(e, "field", None)) for e in parsed.events]
    assert labels == ["m1", "m2", "s1", "s2", "account_update", "m3"]
    assert parsed.skipped == 0


# --- PayloadError -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [],
        [envelope()],
        "whatsapp_business_account",
        None,
        42,
        {},
        {"object": "page", "entry": []},
        {"object": "instagram", "entry": [{"changes": []}]},
        {"object": ["whatsapp_business_account"], "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": None},
        {"object": "whatsapp_business_account", "entry": {"changes": []}},
        {"object": "whatsapp_business_account", "entry": "[]"},
    ],
)
def test_payload_error(body: Any) -> None:
    with pytest.raises(PayloadError):
        parse_webhook(body)
    assert issubclass(PayloadError, ValueError)


def test_empty_entry_list_is_valid() -> None:
    assert parse_webhook(envelope()) == ParsedDelivery(events=[], skipped=0)
    body = {"object": "whatsapp_business_account", "entry": []}
    assert parse_webhook(body) == ParsedDelivery(events=[], skipped=0)


# --- tolerance ----------------------------------------------------------------------------------


def test_entries_that_are_not_objects_are_skipped() -> None:
    body = envelope(change(value(messages=[msg("text", {"body": "x"})])))
    body["entry"] = ["junk", None, 3, [], *body["entry"]]
    parsed = parse_webhook(body)
    assert parsed.skipped == 4
    assert len(parsed.events) == 1


@pytest.mark.parametrize("changes", [None, "x", {}, 5])
def test_entry_without_changes_list_is_skipped(changes: Any) -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": changes}]}
    assert parse_webhook(body) == ParsedDelivery(events=[], skipped=1)
    del body["entry"][0]["changes"]
    assert parse_webhook(body) == ParsedDelivery(events=[], skipped=1)


@pytest.mark.parametrize("bad_value", [None, [], "x", 0])
def test_handled_change_with_bad_value_is_skipped(bad_value: Any) -> None:
    body = envelope(change(bad_value), change(bad_value, "user_preferences"), "junk")  # type: ignore[arg-type]
    assert parse_webhook(body) == ParsedDelivery(events=[], skipped=3)


def test_value_lists_of_wrong_type_are_ignored() -> None:
    v = value(messages={"id": "x"}, statuses="s", contacts="c", errors={"code": 1})  # type: ignore[arg-type]
    v["metadata"] = None
    assert parse_webhook(envelope(change(v))) == ParsedDelivery(events=[], skipped=0)


def test_messages_without_usable_id_or_sender_are_skipped_and_counted() -> None:
    no_id = msg("text", {"body": "x"})
    del no_id["id"]
    no_sender = msg("text", {"body": "x"}, id="no-sender")
    del no_sender["from"]
    messages = [
        no_id,
        msg("text", {"body": "x"}, id=""),
        msg("text", {"body": "x"}, id=None),
        msg("text", {"body": "x"}, id={"nested": 1}),
        no_sender,
        "junk",
        None,
        msg("text", {"body": "kept"}, id=12345),
    ]
    parsed = parse_webhook(envelope(change(value(messages=messages, contacts=[]))))
    assert parsed.skipped == 7
    (event,) = parsed.events
    assert isinstance(event, InboundMessage)
    assert (event.id, event.text) == ("12345", "kept")


def test_sender_without_ids_takes_the_only_contact() -> None:
    m = msg("text", {"body": "x"})
    del m["from"]
    assert one_message(m, contacts=[contact()]).sender.key == "wa:491713920042"


def test_statuses_without_id_are_skipped() -> None:
    no_id = status()
    del no_id["id"]
    parsed = parse_webhook(envelope(change(value(statuses=[no_id, status(id=""), 7, status()]))))
    assert parsed.skipped == 3
    assert [e.id for e in parsed.events] == [WAMID_2]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1749416383", 1749416383),
        (1749416383, 1749416383),
        (" 1749416383 ", 1749416383),
        ("1749416383.7", 1749416383),
        (1749416383.7, 1749416383),
        ("abc", 0),
        ("", 0),
        (None, 0),
        ([], 0),
        ({}, 0),
        (True, 0),
        ("1e400", 0),
        (float("nan"), 0),
        (float("inf"), 0),
        ("9" * 5000, 0),
    ],
)
def test_timestamp_tolerance(raw: Any, expected: int) -> None:
    assert one_message(msg("text", {"body": "x"}, timestamp=raw)).timestamp == expected
    assert one_status(status(timestamp=raw)).timestamp == expected


def test_content_of_wrong_shape_gives_none() -> None:
    assert one_message(msg("text", "not an object")).text is None
    assert one_message(msg("text", {"body": 5})).text is None
    assert one_message(msg("image", ["x"])).media_id is None
    assert one_message(msg("interactive", {"type": "button_reply", "button_reply": 1})).text is None
    assert one_message(msg("reaction", None)).reaction_to is None
    assert one_message(msg("system", "x")).system_type is None


def test_one_bad_message_does_not_drop_its_neighbours() -> None:
    bad = {"id": WAMID, "from": {"x": 1}, "type": ["text"], "text": None, "errors": "e"}
    good = msg("text", {"body": "ok"})
    parsed = parse_webhook(envelope(change(value(messages=[good, bad, good]))))
    assert parsed.skipped == 1
    assert [e.text for e in parsed.events] == ["ok", "ok"]  # type: ignore[union-attr]


def test_events_are_frozen() -> None:
    event = one_message(msg("text", {"body": "x"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.text = "y"  # type: ignore[misc]


def test_parse_is_fast_enough() -> None:
    body = envelope(change(value(messages=[msg("text", {"body": "x"})], contacts=[contact()])))
    start = time.perf_counter()
    for _ in range(1000):
        parse_webhook(body)
    assert time.perf_counter() - start < 1.0  # the budget is 1,000 deliveries/s; we use ~2%


# --- corpus of real payloads (../shared/meta-samples) -------------------------------------------

# File prefix -> expected events, as (kind, detail): detail is the message type, the status, or
# the error codes of a ValueErrors.
CORPUS: dict[str, list[tuple[type, Any]]] = {
    "01": [(InboundMessage, "text")],
    "02": [(InboundMessage, "image")],
    "03": [(InboundMessage, "interactive")],
    "04": [(InboundMessage, "interactive")],
    "05": [(InboundMessage, "button")],
    "06": [(InboundMessage, "reaction")],
    "07": [(InboundMessage, "reaction")],
    "08": [(InboundMessage, "unsupported")],
    "09": [(InboundMessage, "text")],
    "10": [(InboundMessage, "system")],
    "11": [(InboundMessage, "system")],
    "12": [(StatusUpdate, "sent")],
    "13": [(StatusUpdate, "delivered")],
    "14": [(StatusUpdate, "read")],
    "15": [(StatusUpdate, "failed")],
    "16": [(StatusUpdate, "failed")],
    "17": [(StatusUpdate, "failed")],
    "18": [(ValueErrors, (130429,))],
    "19": [(InboundMessage, "text")],
    "20": [(StatusUpdate, "delivered")],
    "21": [(InboundMessage, "text"), (InboundMessage, "reaction")],
    "22": [(InboundMessage, "text"), (StatusUpdate, "delivered")],
}


def corpus_files() -> list[Path]:
    if not PAYLOADS.is_dir():
        pytest.skip(NO_SAMPLES)
    return sorted(PAYLOADS.glob("*.json"))


def load_sample(prefix: str) -> Any:
    matches = [p for p in corpus_files() if p.name.startswith(f"{prefix}_")]
    assert len(matches) == 1, f"expected one sample file starting with {prefix}_"
    return json.loads(matches[0].read_text(encoding="utf-8"))


def parse_sample(prefix: str) -> ParsedDelivery:
    parsed = parse_webhook(load_sample(prefix))
    assert parsed.skipped == 0
    return parsed


def detail(event: Any) -> Any:
    if isinstance(event, InboundMessage):
        return event.type
    if isinstance(event, StatusUpdate):
        return event.status
    if isinstance(event, ValueErrors):
        return tuple(e.code for e in event.errors)
    return None


def test_corpus_every_file_parses_and_is_expected() -> None:
    files = corpus_files()
    assert files, NO_SAMPLES
    for path in files:
        parsed = parse_webhook(json.loads(path.read_text(encoding="utf-8")))
        assert parsed.skipped == 0, path.name
        assert path.name[:2] in CORPUS, f"{path.name}: add its expected events to CORPUS"


@pytest.mark.parametrize("prefix", sorted(CORPUS))
def test_corpus_event_kinds(prefix: str) -> None:
    parsed = parse_sample(prefix)
    assert [(type(e), detail(e)) for e in parsed.events] == CORPUS[prefix]
    for event in parsed.events:
        if isinstance(event, InboundMessage | StatusUpdate):
            assert event.id.startswith("wamid.")
            assert event.timestamp > 1_600_000_000
            assert event.phone_number_id


def test_corpus_07_reaction_removed() -> None:
    (event,) = parse_sample("07").events
    assert isinstance(event, InboundMessage)
    assert event.reaction_emoji is None
    assert event.reaction_to


def test_corpus_08_unsupported_error() -> None:
    (event,) = parse_sample("08").events
    assert isinstance(event, InboundMessage)
    assert [e.code for e in event.errors] == [131051]


def test_corpus_10_system_changed_number() -> None:
    (event,) = parse_sample("10").events
    assert isinstance(event, InboundMessage)
    assert event.system_type == "user_changed_number"
    assert event.sender.wa_id and event.sender.name is None


@pytest.mark.parametrize(("prefix", "code"), [("15", 131047), ("16", 131026), ("17", 131049)])
def test_corpus_failed_status_codes(prefix: str, code: int) -> None:
    (event,) = parse_sample(prefix).events
    assert isinstance(event, StatusUpdate)
    assert event.status == "failed"
    assert [e.code for e in event.errors] == [code]


def test_corpus_18_value_errors() -> None:
    (event,) = parse_sample("18").events
    assert isinstance(event, ValueErrors)
    assert event.errors[0].code == 130429


def test_corpus_19_sender_by_bsuid_only() -> None:
    (event,) = parse_sample("19").events
    assert isinstance(event, InboundMessage)
    assert event.sender.wa_id is None
    assert event.sender.user_id and event.sender.key == f"bsuid:{event.sender.user_id}"
    assert event.sender.name and event.sender.username


def test_corpus_20_status_to_bsuid() -> None:
    (event,) = parse_sample("20").events
    assert isinstance(event, StatusUpdate)
    assert event.recipient.wa_id is None
    assert event.recipient.user_id and event.recipient.name


def test_corpus_21_two_messages_same_sender_in_order() -> None:
    first, second = parse_sample("21").events
    assert isinstance(first, InboundMessage) and isinstance(second, InboundMessage)
    assert first.sender == second.sender
    assert first.sender.wa_id and first.sender.wa_id.startswith("49")
    assert first.timestamp <= second.timestamp


def test_corpus_22_message_then_status() -> None:
    message, state = parse_sample("22").events
    assert isinstance(message, InboundMessage) and isinstance(state, StatusUpdate)
    assert message.context_id and message.sender.name
    assert state.recipient.wa_id != message.sender.wa_id


# --- never raises (hypothesis) ------------------------------------------------------------------

KEYS = [
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "username",
    "wa_id",
    "user_id",
    "messages",
    "statuses",
    "errors",
    "user_preferences",
    "from",
    "from_user_id",
    "recipient_id",
    "recipient_user_id",
    "id",
    "timestamp",
    "type",
    "text",
    "body",
    "interactive",
    "button_reply",
    "list_reply",
    "title",
    "button",
    "payload",
    "image",
    "caption",
    "mime_type",
    "reaction",
    "message_id",
    "emoji",
    "system",
    "context",
    "referral",
    "code",
    "error_data",
    "details",
    "pricing",
    "category",
    "conversation",
    "origin",
    "status",
]
TYPES = ["text", "interactive", "button", "image", "reaction", "system", "unsupported", "x"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["messages", "user_preferences", "whatsapp_business_account", *TYPES])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=20,
)
small_json = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=2)
    ),
    max_leaves=4,
)


def check(body: Any) -> None:
    """parse_webhook may only raise PayloadError, and what it returns must hold its promises."""
    try:
        parsed = parse_webhook(body)
    except PayloadError:
        return
    assert parsed.skipped >= 0
    for event in parsed.events:
        assert isinstance(
            event, InboundMessage | StatusUpdate | ValueErrors | PreferenceUpdate | Unhandled
        )
        if isinstance(event, InboundMessage):
            assert event.id and isinstance(event.id, str)
            assert event.sender.key
            assert isinstance(event.type, str) and event.type
            assert isinstance(event.timestamp, int)
        if isinstance(event, StatusUpdate):
            assert event.id and isinstance(event.timestamp, int)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_values)
def test_arbitrary_json_never_raises(body: Any) -> None:
    check(body)


@FAST
@given(st.lists(json_values, max_size=3), st.sampled_from(["messages", "user_preferences", "x"]))
def test_arbitrary_values_in_envelope_never_raise(values: list[Any], field: str) -> None:
    check(envelope(*(change(v, field) for v in values)))
    check(
        envelope(*(change({"messages": v, "statuses": v, "user_preferences": v}) for v in values))
    )


def seed_payloads() -> list[Any]:
    """Real samples when present, else (and also) this file's own literal payloads."""
    own = [
        envelope(
            change(
                value(
                    messages=[
                        msg("interactive", {"type": "button_reply", "button_reply": {"id": "a"}}),
                        msg("reaction", {"message_id": "x", "emoji": "👍"}),
                        msg("unsupported", {"type": "edit"}, errors=[{"code": 131051}]),
                    ],
                    contacts=[contact(), {"user_id": BSUID, "profile": {"name": "B"}}],
                )
            ),
            change(value(statuses=[status("failed", errors=[{"code": 131047}])])),
            change(preferences_value({"wa_id": "1", "value": "stop"}), "user_preferences"),
        )
    ]
    if PAYLOADS.is_dir():
        own += [json.loads(p.read_text(encoding="utf-8")) for p in sorted(PAYLOADS.glob("*.json"))]
    return own


SEEDS = seed_payloads()


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


def mutate(doc: Any, path: tuple[Any, ...], action: str, new: Any) -> Any:
    """Delete, replace, wrap in a list or stringify the node at `path`."""
    if not path:
        return new if action == "replace" else [doc] if action == "wrap" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "delete":
        del parent[key]
    elif action == "replace":
        parent[key] = new
    elif action == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = str(parent[key])
    return doc


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_payloads_never_raise(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(SEEDS)))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths(doc)))
        action = data.draw(st.sampled_from(["delete", "replace", "wrap", "stringify"]))
        doc = mutate(doc, path, action, data.draw(small_json))
    check(doc)


def party_contact(party: Party) -> dict[str, Any]:
    """A contacts[] entry rebuilt from a Party, as a store re-wrapping one event would."""
    c: dict[str, Any] = {"profile": {"name": party.name, "username": party.username}}
    if party.wa_id:
        c["wa_id"] = party.wa_id
    if party.user_id:
        c["user_id"] = party.user_id
    return c


def test_message_reparses_from_its_raw_and_sender() -> None:
    """Storing `raw` plus the sender as a one-message body and parsing it again is lossless."""
    bodies = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(PAYLOADS.glob("*.json"))]
    no_from = msg("text", {"body": "x"})
    del no_from["from"]
    bodies += [
        envelope(change(value(messages=[no_from], contacts=[contact()]))),
        envelope(change(value(messages=[msg("text", {"body": "x"}, **{"from": "+4917"})]))),
    ]
    for body in bodies:
        for event in parse_webhook(body).events:
            if not isinstance(event, InboundMessage):
                continue
            v = value(messages=[event.raw], contacts=[party_contact(event.sender)])
            v["metadata"]["phone_number_id"] = event.phone_number_id
            assert parse_webhook(envelope(change(v))).events == [event]
