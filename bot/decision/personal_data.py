"""Personal data in text (customer numbers, UK phone numbers, e-mail addresses, IBANs), found by regexes.

The patterns are copies of those in training_data/nlu/entities.yml (a unit test keeps them equal), matched
case-insensitively as Rasa does, so triage and the tone check see what the NLU sees without depending on Rasa.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

# How reasons and violations name each kind (never the value itself).
DESCRIPTIONS: dict[str, str] = {
    "customer_number": "a customer number",
    "phone_number": "a phone number",
    "email": "an e-mail address",
    "iban": "a bank account number (IBAN)",
}

PERSONAL_DATA_ENTITIES = frozenset(PATTERNS)

_COMPILED = {kind: re.compile(pattern, re.IGNORECASE) for kind, pattern in PATTERNS.items()}


@dataclass(frozen=True)
class PersonalData:
    kind: str  # one of PATTERNS
    start: int
    end: int
    value: str

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.kind]


def find_personal_data(text: str) -> list[PersonalData]:
    """Every piece of personal data in `text`, in order of position."""
    found = [
        PersonalData(kind, match.start(), match.end(), match.group(0))
        for kind, pattern in _COMPILED.items()
        for match in pattern.finditer(text)
    ]
    return sorted(found, key=lambda item: (item.start, item.end))


def personal_data_kinds(text: str) -> list[str]:
    """The kinds of personal data in `text`, each once, in the order of PATTERNS."""
    present = {item.kind for item in find_personal_data(text)}
    return [kind for kind in PATTERNS if kind in present]


def describe_kinds(kinds: list[str]) -> str:
    """'a phone number and an e-mail address': for reasons and violations."""
    names = [DESCRIPTIONS.get(kind, kind.replace("_", " ")) for kind in kinds]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
