"""Personal data found by carebot's own code (bot/decision/personal_data.py): a table of what each kind finds and
what it must leave alone, overlaps resolved to the most specific kind, and redaction that leaves nothing behind."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.decision.personal_data import (
    DESCRIPTIONS,
    KINDS,
    PATTERNS,
    PLACEHOLDERS,
    describe_kinds,
    find_personal_data,
    luhn_valid,
    personal_data_kinds,
    redact,
)

FOUND = [
    # payment cards: Luhn-valid numbers, grouped or not
    ("card 4111 1111 1111 1111 please refund", "card_number", "4111 1111 1111 1111"),
    ("5555-5555-5555-4444 was charged twice", "card_number", "5555-5555-5555-4444"),
    ("my card is 4111111111111111", "card_number", "4111111111111111"),
    ("amex 3782 822463 10005", "card_number", "3782 822463 10005"),
    ("378282246310005 is my amex", "card_number", "378282246310005"),
    ("discover 6011 0009 9013 9424", "card_number", "6011 0009 9013 9424"),
    ("debit card 4000 0566 5566 5556 declined", "card_number", "4000 0566 5566 5556"),
    # expiry dates and security codes next to their words
    ("exp 09/27", "card_expiry", "09/27"),
    ("expiry 09/2027", "card_expiry", "09/2027"),
    ("it expires 9/27", "card_expiry", "9/27"),
    ("valid thru 12/28", "card_expiry", "12/28"),
    ("cvv 123", "card_cvv", "123"),
    ("CVC: 987", "card_cvv", "987"),
    ("security code 4321", "card_cvv", "4321"),
    ("4111 1111 1111 1111 09/27 123", "card_expiry", "09/27"),  # right after a card number, without words
    ("4111 1111 1111 1111 09/27 123", "card_cvv", "123"),
    # phone numbers of any country
    ("call me on +1 415 555 0134", "phone_number", "+1 415 555 0134"),
    ("in Berlin: +49 30 1234567", "phone_number", "+49 30 1234567"),
    ("0033 1 23 45 67 89 is my French number", "phone_number", "0033 1 23 45 67 89"),
    ("ring +33 6 12 34 56 78", "phone_number", "+33 6 12 34 56 78"),
    ("+353 1 234 5678", "phone_number", "+353 1 234 5678"),
    ("+91 98765 43210", "phone_number", "+91 98765 43210"),
    ("+1 555 555 5555", "phone_number", "+1 555 555 5555"),  # international and the right length
    ("UK 07700 900123", "phone_number", "07700 900123"),
    ("07700900123", "phone_number", "07700900123"),
    ("landline 0161 496 0742", "phone_number", "0161 496 0742"),
    ("+44 (0)20 7946 0958", "phone_number", "+44 (0)20 7946 0958"),
    # UK postcodes
    ("postcode SW1A 1AA", "postcode", "SW1A 1AA"),
    ("i'm in m1 1ae", "postcode", "m1 1ae"),
    ("EC1V 9HX", "postcode", "EC1V 9HX"),
    ("LS8 4QP, need fibre", "postcode", "LS8 4QP"),
    # street addresses
    ("I live at 14 Acacia Avenue", "address", "14 Acacia Avenue"),
    ("flat 3, 22 Mill Lane", "address", "flat 3, 22 Mill Lane"),
    ("221b Baker Street", "address", "221b Baker Street"),
    ("moving to 7 ashby road next week", "address", "7 ashby road"),
    ("12 St Johns Road, Leeds", "address", "12 St Johns Road"),
    ("4 Orchard Close, Taunton", "address", "4 Orchard Close"),
    ("Flat 3, 10 Quay St, Bristol", "address", "Flat 3, 10 Quay St"),
    # names the customer gives
    ("my name is Jane Smith and my hub is down", "name", "Jane Smith"),
    ("name's Tom, still no internet", "name", "Tom"),
    ("this is Priya Patel from Leeds", "name", "Priya Patel"),
    ("account holder is Mr J Brown", "name", "Mr J Brown"),
    ("my name is jane smith", "name", "jane smith"),
    ("It's Sarah here, hub is dead", "name", "Sarah"),
    ("the account is in the name of Zoë O'Brien", "name", "Zoë O'Brien"),
    ("Hi Dr Patel, the hub is down", "name", "Dr Patel"),  # a title after a greeting is still a title
    ("my home at 14 Acacia Avenue has no signal", "address", "14 Acacia Avenue"),
    # account numbers
    ("my account is 12345678901", "account_number", "12345678901"),
    ("12345678901 is my account", "account_number", "12345678901"),
    ("acc no 123456", "account_number", "123456"),
    ("ref: 1234567", "account_number", "1234567"),
    ("customer number 99887766", "account_number", "99887766"),
    ("KT 66304512, still billed", "account_number", "66304512"),
    ("account number 1234 5678 90", "account_number", "1234 5678 90"),
    # the NLU's regexes
    ("KT-48213907", "customer_number", "KT-48213907"),
    ("jo.bloggs+care@example.co.uk", "email", "jo.bloggs+care@example.co.uk"),
    ("GB33 BUKB 2020 1555 5555 55", "iban", "GB33 BUKB 2020 1555 5555 55"),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND, ids=[f"{k}: {t}" for t, k, _ in FOUND])
def test_each_kind_is_found(text: str, kind: str, value: str) -> None:
    found = [(item.kind, item.value) for item in find_personal_data(text)]
    assert (kind, value) in found
    for item in find_personal_data(text):
        assert text[item.start : item.end] == item.value


NOT_FOUND = [
    # numbers that are not cards
    ("4111 1111 1111 1112", "card_number"),  # fails the Luhn check
    ("4111111111111112", "card_number"),
    ("1234 5678 9012 3456", "card_number"),
    ("0000 0000 0000 0000", "card_number"),  # no card number starts with 0
    ("https://x.com/KestrelCare/status/1790123456789012345", "card_number"),  # a tweet id in a link
    ("07700 900123 07700 900124", "card_number"),  # two phone numbers side by side
    # things that are not expiry dates or security codes
    ("paid on 09/27 last year", "card_expiry"),
    ("I waited 123 minutes", "card_cvv"),
    ("expect 09/27", "card_expiry"),
]


@pytest.mark.parametrize(("text", "kind"), NOT_FOUND, ids=[f"{k}: {t}" for t, k in NOT_FOUND])
def test_a_kind_is_not_found_where_it_is_not(text: str, kind: str) -> None:
    assert kind not in personal_data_kinds(text)


NOTHING = [
    "fibre 900",
    "150mbps",
    "150 Mbps",
    "broadband crawling at 8mbps on a 150 package",
    "£34.99",
    "£34.99 a month for Fibre 500",
    "0800 on the 12/11",
    "0800 numbers are free, fibre 1000 is 900 Mbps",
    "paid £45 on 12/11/2024 at 14:30",
    "https://t.co/AbC123xyz",
    "https://x.com/KestrelCare/status/1790123456789012345",
    "see kestrel.example/help/outage/20240112123",
    "order A12345",
    "order A1234567890",
    "KT-4821390",
    "ps5 4th gen",
    "2 bars on 4G since 12 May",
    "3 days in a row",
    "took them to 2 small claims court",
    "10 min drive from the exchange",
    "5 minutes down the road",
    "my name is on the bill",
    "my name is spelt wrong",
    "this is ridiculous",
    "This is Kestrel's fault",
    "this is Fibre 500 from hell",
    "Hub 4 restarted 3 times",
    "reset on 20240112",  # an 8-digit date
    "Your PUK is in the app",
    "Hi Sam, I've reset your hub; give it 5 minutes. ^AB",
    # another company's references and places
    "PayPal case ID is PP-006-234-348-863",  # digits glued to letters are a reference, not a phone number
    "Any word on when your 532 W. Broadway location in Vancouver will open?",  # a shop's address
    "the shop at 10 High Street is shut again",
    "your Anthony Dr Champaign IL location isn't helping",  # "Dr" after a street's name is Drive
]


@pytest.mark.parametrize("text", NOTHING)
def test_ordinary_text_has_no_personal_data(text: str) -> None:
    assert find_personal_data(text) == []
    assert redact(text) == text


def test_overlaps_keep_the_most_specific_kind() -> None:
    assert personal_data_kinds("4111111111111111") == ["card_number"]  # not an account number too
    assert personal_data_kinds("call 02079460958") == ["phone_number"]  # 11 digits, but a phone number
    assert personal_data_kinds("GB33 BUKB 2020 1555 5555 55") == ["iban"]
    assert personal_data_kinds("KT-48213907") == ["customer_number"]
    assert personal_data_kinds("account 07700 900123") == ["account_number"]  # the word says what it is
    text = "card 4111 1111 1111 1111 exp 09/27 cvv 123, call +1 415 555 0134, 14 Acacia Avenue SW1A 1AA"
    kinds = ["card_number", "card_expiry", "card_cvv", "phone_number", "postcode", "address"]
    assert personal_data_kinds(text) == kinds
    found = find_personal_data(text)
    assert [item.start for item in found] == sorted(item.start for item in found)
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))


def test_redact_keeps_no_digit_of_a_card() -> None:
    for text in (
        "my card 4111 1111 1111 1111 exp 09/27 cvv 123 was charged",
        "5555-5555-5555-4444, expiry 09/2027, security code 4321",
        "4111111111111111 09/27 123",
    ):
        redacted = redact(text)
        assert "[card number]" in redacted
        assert not re.search(r"\d", redacted), redacted
    assert redact("card 4111 1111 1111 1111 exp 09/27 cvv 123") == (
        "card [card number] exp [card expiry] cvv [security code]"
    )


def test_redact_puts_a_placeholder_for_every_kind() -> None:
    text = (
        "my name is Jane Smith, 14 Acacia Avenue SW1A 1AA, account 12345678901, KT-48213907, "
        "jo@example.com, +49 30 1234567, GB33 BUKB 2020 1555 5555 55"
    )
    assert redact(text) == (
        "my name is [name], [address] [postcode], account [account number], [customer number], "
        "[e-mail], [phone number], [bank account]"
    )
    assert redact("") == ""


def test_kinds_descriptions_and_placeholders_cover_each_other() -> None:
    assert set(KINDS) == set(DESCRIPTIONS) == set(PLACEHOLDERS)
    assert set(PATTERNS) <= set(KINDS)
    assert DESCRIPTIONS["card_number"] == "a payment card number"
    assert describe_kinds(["card_number", "phone_number"]) == "a payment card number and a phone number"
    assert personal_data_kinds("jo@example.com and 4111 1111 1111 1111") == ["card_number", "email"]  # KINDS order


def test_the_luhn_check() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("41x1") and not luhn_valid("")


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("0123456789 -+/.,:£abcKTSW@()\n"), max_size=80))
def test_finding_and_redacting_never_crash_and_leave_no_find_behind(text: str) -> None:
    found = find_personal_data(text)
    assert all(0 <= item.start < item.end <= len(text) and item.kind in KINDS for item in found)
    redacted = redact(text)
    for item in found:
        if item.kind == "card_number":
            assert item.value not in redacted
