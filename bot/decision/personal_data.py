"""Personal data in text, found by carebot's own code (it works whether or not the NLU is up).

Kinds (KINDS, in the order reasons name them): payment card numbers (13-19 digits that pass the Luhn check),
card expiry dates and security codes (CVV/CVC) next to such words or right after a card number, customer numbers
(KT-12345678), account numbers (8-12 bare digits, or 6+ after a word such as "account", "acc no", "ref"), phone
numbers of any country (libphonenumber's data through `phonenumbers`, plus the UK regex the NLU uses), e-mail
addresses, IBANs, UK postcodes, street addresses ("22 Mill Lane") and names a customer gives ("my name is …",
"this is … from", "account holder is Mr J Brown").

PATTERNS are copies of the regexes in training_data/nlu/entities.yml (a unit test keeps them equal), matched
case-insensitively as Rasa does, so triage and the tone check see at least what the NLU sees. Where finds overlap,
the most specific kind is kept (a card over an account number, a phone number over an account number). `redact`
replaces every find with a placeholder such as "[card number]", for exports and list views.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import phonenumbers

# entity name → the regex in training_data/nlu/entities.yml, character for character.
PATTERNS: dict[str, str] = {
    "customer_number": r"\bKT-?\d{8}\b",
    "phone_number": r"(?<![\w+])(?:\+44\s?(?:\(0\)\s?)?|0)(?:7\d{3}\s?\d{3}\s?\d{3}|[123]\d(?:\s?\d){7,8})(?!\d)",
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    "iban": (
        r"\b[A-Z]{2}\d{2}(?=(?: ?[A-Z0-9]){11})(?: ?[A-Z0-9]{4})(?: ?(?=[A-Z]{0,3}\d)[A-Z0-9]{4}){1,6}"
        r"(?: ?[A-Z0-9]{1,3})?\b"
    ),
}

# Every kind, in the order reasons and violations name them.
KINDS: tuple[str, ...] = (
    "card_number",
    "card_expiry",
    "card_cvv",
    "customer_number",
    "account_number",
    "phone_number",
    "email",
    "iban",
    "postcode",
    "address",
    "name",
)

# How reasons and violations name each kind (never the value itself).
DESCRIPTIONS: dict[str, str] = {
    "card_number": "a payment card number",
    "card_expiry": "a card expiry date",
    "card_cvv": "a card security code (CVV)",
    "customer_number": "a customer number",
    "account_number": "an account number",
    "phone_number": "a phone number",
    "email": "an e-mail address",
    "iban": "a bank account number (IBAN)",
    "postcode": "a postcode",
    "address": "a street address",
    "name": "a name",
}

# What `redact` puts in place of each kind.
PLACEHOLDERS: dict[str, str] = {
    "card_number": "[card number]",
    "card_expiry": "[card expiry]",
    "card_cvv": "[security code]",
    "customer_number": "[customer number]",
    "account_number": "[account number]",
    "phone_number": "[phone number]",
    "email": "[e-mail]",
    "iban": "[bank account]",
    "postcode": "[postcode]",
    "address": "[address]",
    "name": "[name]",
}

# Payment card data is never written in any reply, public or direct message (PCI DSS).
CARD_KINDS = frozenset({"card_number", "card_expiry", "card_cvv"})

# The entities the NLU extracts (training_data/nlu/entities.yml): the kinds it can report itself.
PERSONAL_DATA_ENTITIES = frozenset(PATTERNS)

_COMPILED = {kind: re.compile(pattern, re.IGNORECASE) for kind, pattern in PATTERNS.items()}

# Where finds overlap the higher rank wins; within a rank, the longer find.
_RANK = {
    "iban": 100,
    "email": 95,
    "card_number": 90,
    "customer_number": 85,
    "card_cvv": 80,
    "card_expiry": 80,
    "account_number_labelled": 70,
    "phone_number": 60,
    "postcode": 50,
    "address": 40,
    "name": 30,
    "account_number": 20,
}


@dataclass(frozen=True)
class PersonalData:
    kind: str  # one of KINDS
    start: int
    end: int
    value: str

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.kind]


@dataclass(frozen=True)
class _Candidate:
    kind: str
    start: int
    end: int
    rank: int


# ---------------------------------------------------------------- links (their digits are tweet ids, not data)

_URL = re.compile(
    r"(?:\bhttps?://|\bwww\.)\S+|\b(?:[a-z0-9-]+\.)+(?:com|co|uk|org|net|io|ly|me|example|app|dev|info)/\S*",
    re.IGNORECASE,
)


def _url_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _URL.finditer(text)]


def _in_any(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


# ---------------------------------------------------------------- payment cards


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Runs of digit groups joined by single spaces or dashes; a "+" before means an international phone number.
_DIGIT_RUN = re.compile(r"(?<![\w+.,£$€])\d+(?:[ -]\d+)*(?![\w]|[.,]\d)")
_GROUP = re.compile(r"\d+")
# Card lengths, commonest first: a run with a date or code after the number is cut at the likeliest length.
_CARD_LENGTHS = (16, 15, 19, 14, 13, 18, 17)


def _card_shape(groups: list[str], whole_run: bool) -> bool:
    """How people write card numbers: unbroken, in fours (the last group shorter), 4-6-4/5 (Amex, Diners);
    any other grouping only when it is the whole run of digits (two phone numbers side by side are not a card)."""
    lengths = [len(group) for group in groups]
    if len(lengths) == 1:
        return True
    if all(length == 4 for length in lengths[:-1]) and 1 <= lengths[-1] <= 4:
        return True
    if lengths[:2] == [4, 6] and len(lengths) == 3 and lengths[2] in (4, 5):
        return True
    return whole_run


def _cards(text: str, urls: list[tuple[int, int]]) -> list[_Candidate]:
    found = []
    for run in _DIGIT_RUN.finditer(text):
        if _in_any(run.start(), run.end(), urls):
            continue
        groups = [(m.start() + run.start(), m.end() + run.start(), m.group(0)) for m in _GROUP.finditer(run.group(0))]
        first = 0
        while first < len(groups):
            best: tuple[int, int] | None = None  # (preference, last)
            for last in range(first + 1, len(groups) + 1):
                chosen = [group for _, _, group in groups[first:last]]
                digits = "".join(chosen)
                if len(digits) > 19:
                    break
                if len(digits) < 13 or digits[0] == "0":  # no card number starts with 0 (ISO/IEC 7812)
                    continue
                whole = first == 0 and last == len(groups)
                if _card_shape(chosen, whole) and luhn_valid(digits):
                    preference = _CARD_LENGTHS.index(len(digits))
                    if best is None or preference < best[0]:
                        best = (preference, last)
            if best is None:
                first += 1
                continue
            last = best[1]
            found.append(_Candidate("card_number", groups[first][0], groups[last - 1][1], _RANK["card_number"]))
            first = last
    return found


_EXPIRY_VALUE = r"(?:0?[1-9]|1[0-2])\s?[/.-]\s?(?:20)?\d{2}"
_EXPIRY = re.compile(
    r"\b(?:exp(?:iry|iration|ires|ire|\.)?(?:\s+date)?|valid\s+(?:thru|through|until|till|to)|end\s+date)"
    r"(?![a-z])\s*(?:is\s+|on\s+)?[:=-]?\s*(?P<value>" + _EXPIRY_VALUE + r")(?![\d/.-]\d)",
    re.IGNORECASE,
)
_CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|cv2|csc|card\s+verification\s+(?:value|code)|(?:card\s+)?security\s+(?:code|number|digits)"
    r"|card\s+code)(?![a-z])\s*(?:is\s+)?(?:no\.?\s*|number\s*|#\s*)?[:=-]?\s*(?P<value>\d{3,4})(?!\d)",
    re.IGNORECASE,
)
# Straight after a card number: an expiry date, then a 3-4 digit code, with or without their words.
_AFTER_CARD_EXPIRY = re.compile(
    r"[\s,;/]{1,3}(?:(?:exp(?:iry|ires)?|valid\s+thru)\.?\s*:?\s*)?(?P<value>" + _EXPIRY_VALUE + r")(?![\d/.-]\d)",
    re.IGNORECASE,
)
_AFTER_CARD_CVV = re.compile(
    r"[\s,;/]{1,3}(?:(?:cvv2?|cvc2?|cv2|csc|security\s+code)\s*:?\s*)?(?P<value>\d{3,4})(?![\d/.,:]|\s?[-/]\s?\d)",
    re.IGNORECASE,
)


def _card_details(text: str, cards: list[_Candidate]) -> list[_Candidate]:
    found = []
    for pattern, kind in ((_EXPIRY, "card_expiry"), (_CVV, "card_cvv")):
        found += [_Candidate(kind, m.start("value"), m.end("value"), _RANK[kind]) for m in pattern.finditer(text)]
    for card in cards:
        position = card.end
        expiry = _AFTER_CARD_EXPIRY.match(text, position)
        if expiry:
            found.append(_Candidate("card_expiry", expiry.start("value"), expiry.end("value"), _RANK["card_expiry"]))
            position = expiry.end()
        cvv = _AFTER_CARD_CVV.match(text, position)
        if cvv:
            found.append(_Candidate("card_cvv", cvv.start("value"), cvv.end("value"), _RANK["card_cvv"]))
    return found


# ---------------------------------------------------------------- phone numbers

_INTERNATIONAL = re.compile(r"\+|00[1-9]")
_INTERNATIONAL_IN_TEXT = re.compile(r"(?:\+|(?<!\d)00)\s?[1-9]")


def _phones(text: str, urls: list[tuple[int, int]]) -> list[_Candidate]:
    found = [
        _Candidate("phone_number", m.start(), m.end(), _RANK["phone_number"])
        for m in _COMPILED["phone_number"].finditer(text)
    ]
    try:
        valid = list(phonenumbers.PhoneNumberMatcher(text, "GB", leniency=phonenumbers.Leniency.VALID))
        international = _INTERNATIONAL_IN_TEXT.search(text) is not None
        # Written with an international prefix, a number of the right length counts even where the plan has no
        # such range yet (+1 555 …): nobody writes "+" before a price or a date.
        possible = []
        if international:
            possible = [
                match
                for match in phonenumbers.PhoneNumberMatcher(text, "GB", leniency=phonenumbers.Leniency.POSSIBLE)
                if _INTERNATIONAL.match(match.raw_string) and sum(c.isdigit() for c in match.raw_string) >= 8
            ]
    except Exception:  # pragma: no cover - the matcher is data-driven; a surprise in it must not hide the rest
        valid, possible = [], []
    for match in valid + possible:
        if not _in_any(match.start, match.end, urls) and not _part_of_identifier(text, match.start, match.end):
            found.append(_Candidate("phone_number", match.start, match.end, _RANK["phone_number"]))
    return found


def _part_of_identifier(text: str, start: int, end: int) -> bool:
    """Digits glued to letters ("PP-006-234-348-863", "ID#0044…", "…-123-AB") are a case or order reference of some
    other company, not a phone number."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    glued_before = bool(before) and (before[-1].isalpha() or (before[-1] in "-#/_" and before[:1].isalnum()))
    glued_after = bool(after) and (after[0].isalpha() or (after[0] in "-#/_" and after[1:2].isalnum()))
    return glued_before or glued_after


# ---------------------------------------------------------------- account numbers

_ACCOUNT_WORDS = (
    r"(?:account|acc|acct|a/c)(?:\s*(?:number|num|no\.?|#))?"
    r"|customer\s+(?:number|num|no\.?|id|ref(?:erence)?)"
    r"|ref(?:erence)?(?:\s*(?:number|num|no\.?|#))?"
    r"|(?:membership|order|billing)\s+(?:number|num|no\.?)"
)
_LABELLED_ACCOUNT = re.compile(
    r"(?<![\w/])(?:" + _ACCOUNT_WORDS + r")(?![a-z])\s*(?:is\s+)?[:#=-]?\s*"
    r"(?P<value>\d{6,16}|\d{2,6}(?:[ -]\d{2,6}){1,3})(?![\w]|[.,]\d)",
    re.IGNORECASE,
)
_BARE_ACCOUNT = re.compile(r"(?<![\w+£$€.,/:-])\d{8,12}(?![\w-]|[.,/:]\d)")


def _is_date(digits: str) -> bool:
    """An 8-digit date (20240112, 12012024) is not an account number."""
    if len(digits) != 8:
        return False
    for year, month, day in ((digits[:4], digits[4:6], digits[6:]), (digits[4:], digits[2:4], digits[:2])):
        try:
            if 1900 <= int(year) <= 2100:
                date(int(year), int(month), int(day))
                return True
        except ValueError:
            continue
    return False


def _accounts(text: str, urls: list[tuple[int, int]]) -> list[_Candidate]:
    found = []
    for match in _LABELLED_ACCOUNT.finditer(text):
        digits = re.sub(r"\D", "", match.group("value"))
        if 6 <= len(digits) <= 16 and not _in_any(match.start("value"), match.end("value"), urls):
            found.append(
                _Candidate("account_number", match.start("value"), match.end("value"), _RANK["account_number_labelled"])
            )
    for match in _BARE_ACCOUNT.finditer(text):
        if not _is_date(match.group(0)) and not _in_any(match.start(), match.end(), urls):
            found.append(_Candidate("account_number", match.start(), match.end(), _RANK["account_number"]))
    return found


# ---------------------------------------------------------------- postcodes

# The UK's postcode areas: an outward code must start with one of them.
_POSTCODE_AREAS = frozenset(
    "AB AL B BA BB BD BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY E EC EH EN EX FK "
    "FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE LL LN LS LU M ME MK ML N NE NG "
    "NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR "
    "TS TW UB W WA WC WD WF WN WR WS WV YO ZE".split()
)
_POSTCODE = re.compile(
    r"\b(?P<area>[A-Z]{1,2})(?P<district>\d[A-Z\d]?) ?(?P<inward>\d[ABD-HJLNP-UW-Z]{2})\b|\bGIR ?0AA\b", re.IGNORECASE
)


def _postcodes(text: str, urls: list[tuple[int, int]]) -> list[_Candidate]:
    found = []
    for match in _POSTCODE.finditer(text):
        area = match.group("area")
        if area is not None and area.upper() not in _POSTCODE_AREAS:
            continue
        if not _in_any(match.start(), match.end(), urls):
            found.append(_Candidate("postcode", match.start(), match.end(), _RANK["postcode"]))
    return found


# ---------------------------------------------------------------- street addresses

# Street types that name a street in any case ("14 acacia avenue")…
_STREET_TYPES = (
    "road rd street lane ln avenue ave drive crescent cres terrace mews grove boulevard gardens gdns parade"
).split()
# …and those that are ordinary words too ("3 days in a row", "small claims court"): only as a capitalised name.
_PROPER_STREET_TYPES = (
    "st close way court ct place pl square sq hill park row walk green rise view vale wharf quay yard gate "
    "circus broadway esplanade embankment"
).split()
_ADDRESS = re.compile(
    r"(?<![\w£$€.,:/+-])(?P<flat>(?:flat|apartment|apt|unit)\.?\s*\d{1,4}[a-z]?\s*,?\s+)?"
    r"(?P<number>\d{1,4}[a-z]?(?:\s?-\s?\d{1,4}[a-z]?)?),?\s+"
    r"(?P<words>(?:[^\W\d_][\w'’.-]*\s+){1,3}?)"
    r"(?P<type>" + "|".join(sorted(_STREET_TYPES + _PROPER_STREET_TYPES, key=len, reverse=True)) + r")\b\.?",
    re.IGNORECASE,
)
_NOT_STREET_WORDS = frozenset(
    "a an the of in on at to for from by with and or my your our their his her its this that these those is are "
    "was were be been it i you we they me us them not no yes but so if as up down off over into out about after "
    "before than then there here per each every last next other more less extra only just very new old times "
    "time hours hour hrs hr mins min minutes minute seconds secs sec days day weeks week wks months month years "
    "year yrs mbps gbps mb gb kb tb bars pounds quid pence p x calls texts lines people devices phones hubs "
    "engineers visits emails messages tweets dms".split()
)


# An address of a shop, a branch or a restaurant is no customer's personal data ("your 532 W. Broadway location",
# "the store at 10 High Street").
_BUSINESS_PLACE = r"location|store|shop|branch|restaurant|outlet|office|showroom|depot|site|centre|center|cafe|café"
_BUSINESS_AFTER = re.compile(r"[\s,]+(?:" + _BUSINESS_PLACE + r")s?\b", re.IGNORECASE)
_BUSINESS_BEFORE = re.compile(
    r"(?:\byour\s+(?:\w+\s+)?|\b(?:" + _BUSINESS_PLACE + r")s?\s+(?:at|on|in)\s+(?:the\s+)?)$", re.IGNORECASE
)


def _is_business_place(text: str, start: int, end: int) -> bool:
    return bool(_BUSINESS_AFTER.match(text, end) or _BUSINESS_BEFORE.search(text[max(0, start - 40) : start]))


def _addresses(text: str, urls: list[tuple[int, int]]) -> list[_Candidate]:
    found = []
    for match in _ADDRESS.finditer(text):
        if _is_business_place(text, match.start(), match.end()):
            continue
        words = match.group("words").split()
        if any(word.casefold().strip(".'’") in _NOT_STREET_WORDS for word in words):
            continue
        street_type = match.group("type")
        if street_type.casefold() in _PROPER_STREET_TYPES and not (
            street_type[0].isupper() and all(word[0].isupper() for word in words)
        ):
            continue
        if not _in_any(match.start(), match.end(), urls):
            found.append(_Candidate("address", match.start(), match.end(), _RANK["address"]))
    return found


# ---------------------------------------------------------------- names

_TITLE = re.compile(r"(?:mr|mrs|ms|miss|mx|dr|sir|dame|prof)\.?\s+", re.IGNORECASE)
# After these the name may be written in lower case ("my name is jane smith")…
_NAME_INTRO = re.compile(
    r"\b(?:my\s+(?:full\s+)?name\s+is|my\s+name'?s|(?<!\w)name'?s|(?:my\s+)?name\s*:|(?:my\s+)?full\s+name\s+is"
    r"|account\s+(?:holder|name)(?:'?s\s+name)?\s*(?:is|:)|(?:account|bill)\s+is\s+in\s+the\s+name\s+of"
    r"|in\s+the\s+name\s+of|(?:account\s+)?holder\s+is|i\s+am\s+called|i'?m\s+called)\s+",
    re.IGNORECASE,
)
# …after these only as a capitalised name followed by a word that shows it is one ("this is Priya Patel from").
_THIS_IS = re.compile(r"\b(?:this\s+is|it'?s|i'?m|i\s+am)\s+", re.IGNORECASE)
_THIS_IS_AFTER = re.compile(r",?\s+(?:from|here|speaking|at\s+(?:home|work)|calling)\b", re.IGNORECASE)
# A title before a capitalised name or initial is a name wherever it appears ("Mr J Brown").
_TITLED = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Sir|Dame|Prof)\.?\s+(?=[A-Z])")
_NAME_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*\.?")
_NOT_NAMES = frozenset(
    "a an the and or but so if as is was are be been not no yes on in at to of for from by with about here "
    "speaking calling still also too just now again wrong incorrect correct right spelt spelled misspelt "
    "misspelled missing listed shown showing changed different same please thanks thank i im me my mine you "
    "your it its this that there they we he she his her our their what which who why how when where on off "
    "kestrel care team support customer service broadband fibre mobile hub account bill billing ridiculous "
    "unacceptable absolutely really so very literally honestly".split()
)


def _name_tokens(text: str, position: int, *, capitalised: bool, most: int = 3) -> tuple[int, int] | None:
    """The span of up to `most` name words (or initials) starting at `position`, or None."""
    end = cursor = position
    count = 0
    while count < most:
        if count:
            if not text.startswith(" ", end):
                break
            cursor = end + 1
        match = _NAME_TOKEN.match(text, cursor)
        if match is None:
            break
        raw = match.group(0)
        word = raw.rstrip(".")
        initial = len(word) == 1
        if word.casefold() in _NOT_NAMES and not (initial and word.isupper()):
            break
        if capitalised and not word[0].isupper():
            break
        if raw.endswith(".") and not initial:  # the sentence ends after this word
            end = match.start() + len(word)
            count += 1
            break
        end = match.end()
        count += 1
    return (position, end) if count else None


_WORD_BEFORE = re.compile(r"([^\W\d_][\w'’-]*)\s+$")
# Capitalised words that stand before a title of a person ("Hi Dr Patel", "Thanks Mr Brown").
_BEFORE_TITLES = frozenset(
    "hi hello hey dear thanks thank cheers sorry morning afternoon evening and or to with from by for is was see "
    "ask asked call called".split()
)


def _is_street_suffix(text: str, title_start: int) -> bool:
    """"Dr" or "St" right after a capitalised name is a street ("Anthony Dr", "Mill St"), not a title."""
    if text[title_start : title_start + 2].casefold() not in {"dr", "st"}:
        return False
    before = _WORD_BEFORE.search(text[max(0, title_start - 40) : title_start])
    if before is None:
        return False
    word = before.group(1)
    return word[0].isupper() and word.casefold() not in _BEFORE_TITLES


def _names(text: str) -> list[_Candidate]:
    found = []
    rank = _RANK["name"]
    for match in _NAME_INTRO.finditer(text):
        position = match.end()
        title = _TITLE.match(text, position)
        span = _name_tokens(text, title.end() if title else position, capitalised=False)
        if span:
            found.append(_Candidate("name", position if title else span[0], span[1], rank))
    for match in _THIS_IS.finditer(text):
        span = _name_tokens(text, match.end(), capitalised=True, most=2)
        if span and _THIS_IS_AFTER.match(text, span[1]):
            found.append(_Candidate("name", span[0], span[1], rank))
    for match in _TITLED.finditer(text):
        if _is_street_suffix(text, match.start()):
            continue
        span = _name_tokens(text, match.end(), capitalised=True)
        if span:
            found.append(_Candidate("name", match.start(), span[1], rank))
    return found


# ---------------------------------------------------------------- finding and redacting


def _candidates(text: str) -> list[_Candidate]:
    urls = _url_spans(text)
    found = [
        _Candidate(kind, m.start(), m.end(), _RANK[kind])
        for kind in ("customer_number", "email", "iban")
        for m in _COMPILED[kind].finditer(text)
    ]
    cards = _cards(text, urls)
    found += cards + _card_details(text, cards)
    found += _phones(text, urls) + _accounts(text, urls) + _postcodes(text, urls) + _addresses(text, urls)
    found += _names(text)
    return [item for item in found if item.end > item.start]


def _resolve(candidates: list[_Candidate]) -> list[_Candidate]:
    """Non-overlapping finds: the highest rank first, the longer of equal rank."""
    kept: list[_Candidate] = []
    for item in sorted(candidates, key=lambda c: (-c.rank, -(c.end - c.start), c.start)):
        if not any(item.start < other.end and other.start < item.end for other in kept):
            kept.append(item)
    return sorted(kept, key=lambda c: (c.start, c.end))


def find_personal_data(text: str) -> list[PersonalData]:
    """Every piece of personal data in `text`, in order of position (overlaps resolved to the most specific)."""
    return [PersonalData(c.kind, c.start, c.end, text[c.start : c.end]) for c in _resolve(_candidates(text))]


def personal_data_kinds(text: str) -> list[str]:
    """The kinds of personal data in `text`, each once, in the order of KINDS."""
    present = {item.kind for item in find_personal_data(text)}
    return [kind for kind in KINDS if kind in present]


def redact(text: str) -> str:
    """`text` with every piece of personal data replaced by its placeholder ("[card number]", "[name]", …).

    Overlapping finds are merged, so no part of any of them is left: the placeholder is the winning kind's."""
    candidates = _candidates(text)
    if not candidates:
        return text
    winners = _resolve(candidates)
    regions: list[list[int]] = []  # [start, end] of merged spans
    for item in sorted(candidates, key=lambda c: c.start):
        if regions and item.start < regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], item.end)
        else:
            regions.append([item.start, item.end])
    pieces = []
    position = 0
    for start, end in regions:
        inside = [w for w in winners if start <= w.start and w.end <= end]
        kinds = list(dict.fromkeys(w.kind for w in inside))
        pieces.append(text[position:start])
        pieces.append(" ".join(PLACEHOLDERS[kind] for kind in kinds) if kinds else "[personal data]")
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def contact_key(value: str) -> str:
    """A phone number in E.164 whichever way it is written ("0330 123 4567", "+44 330 1234567"), anything else
    case-folded: for comparing a find with a published contact."""
    if "@" not in value and sum(char.isdigit() for char in value) >= 6:
        try:
            number = phonenumbers.parse(value, "GB")
        except phonenumbers.NumberParseException:
            return re.sub(r"\D", "", value)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return re.sub(r"\D", "", value)
    return value.casefold()


def describe_kinds(kinds: list[str]) -> str:
    """'a phone number and an e-mail address': for reasons and violations."""
    names = [DESCRIPTIONS.get(kind, kind.replace("_", " ")) for kind in kinds]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
