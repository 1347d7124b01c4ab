"""Outbound messages are checked against WhatsApp's limits before they are queued."""

from __future__ import annotations

import pytest

from bot.config import MasterKey
from bot.crypto import CryptoError, Index, Keyring, open_sealed, seal
from bot.whatsapp.messages import (
    Button,
    Buttons,
    ListMessage,
    MessageTooLarge,
    Recipient,
    Row,
    Template,
    Text,
    graph_body,
    read_receipt,
)

ALICE = Recipient(wa_id="447700900123")


def test_text_shape_and_limit() -> None:
    assert graph_body(Text("hi"), ALICE) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "447700900123",
        "type": "text",
        "text": {"body": "hi", "preview_url": False},
    }
    Text("x" * 4096)
    with pytest.raises(MessageTooLarge):
        Text("x" * 4097)
    with pytest.raises(MessageTooLarge):
        Text("")


def test_buttons_limits() -> None:
    three = tuple(Button(f"b{i}", f"Title {i}") for i in range(3))
    body = graph_body(Buttons("Pick", three, header="H", footer="F"), ALICE)
    assert [b["reply"]["id"] for b in body["interactive"]["action"]["buttons"]] == [
        "b0",
        "b1",
        "b2",
    ]
    assert body["interactive"]["header"] == {"type": "text", "text": "H"}
    with pytest.raises(MessageTooLarge):
        Buttons("Pick", (*three, Button("b3", "four")))
    with pytest.raises(MessageTooLarge):
        Buttons("Pick", (Button("b", "x" * 21),))
    Buttons("Pick", (Button("b", "x" * 20),))
    with pytest.raises(MessageTooLarge):
        Buttons("Pick", (Button("same", "a"), Button("same", "b")))
    with pytest.raises(MessageTooLarge):
        Buttons("x" * 1025, (Button("b", "ok"),))


def test_list_limits() -> None:
    rows = tuple(Row(f"r{i}", f"Row {i}", "desc") for i in range(10))
    body = graph_body(ListMessage("Choose", "Options", (("Section", rows),)), ALICE)
    assert len(body["interactive"]["action"]["sections"][0]["rows"]) == 10
    with pytest.raises(MessageTooLarge):
        ListMessage("Choose", "Options", (("S", (*rows, Row("r10", "eleven"))),))
    with pytest.raises(MessageTooLarge):
        ListMessage("Choose", "Options", (("S", (Row("r", "x" * 25),)),))
    with pytest.raises(MessageTooLarge):
        ListMessage("Choose", "x" * 21, (("S", rows[:1]),))


def test_template_bsuid_and_read_receipt() -> None:
    body = graph_body(
        Template("order_update", "en", ({"type": "body"},)), Recipient(user_id="US.1")
    )
    assert body["recipient"] == "US.1" and "to" not in body
    assert body["template"] == {
        "name": "order_update",
        "language": {"code": "en"},
        "components": [{"type": "body"}],
    }
    assert read_receipt("wamid.X") == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.X",
    }
    with pytest.raises(ValueError):
        graph_body(Text("hi"), Recipient())


def test_sealed_value_is_bound_to_its_place() -> None:
    import os

    ring = Keyring([MasterKey("k1", os.urandom(32))], os.urandom(32))
    dk, wrapped = ring.new_data_key("dk1")
    blob = seal(dk, b"+447700900123", "contacts/phone/c1")
    assert open_sealed(dk, blob, "contacts/phone/c1") == b"+447700900123"
    with pytest.raises(CryptoError):
        open_sealed(dk, blob, "contacts/phone/c2")  # copied to another row
    ring2 = Keyring([MasterKey("k1", os.urandom(32))], os.urandom(32))
    with pytest.raises(CryptoError):
        ring2.unwrap("dk1", wrapped)  # another master key
    assert ring.blind_index(Index.PHONE, "+1") != ring2.blind_index(Index.PHONE, "+1")
