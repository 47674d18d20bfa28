"""The policy file: the repository's file is valid and complete, it round-trips, and bad files are refused
with the reason; the personal-data patterns stay equal to the NLU's."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.decision.personal_data import PATTERNS, describe_kinds, find_personal_data, personal_data_kinds
from bot.decision.policy import (
    DEFAULT_POLICY_PATH,
    NEVER,
    CalibrationInfo,
    PolicyError,
    Thresholds,
    load_policy,
    policy_from_dict,
    render_policy,
    save_policy,
)

TRAINING_DATA = DEFAULT_POLICY_PATH.parent


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_the_repository_policy_covers_every_intent_of_the_domain() -> None:
    policy = load_policy()
    domain = yaml.safe_load((TRAINING_DATA / "domain.yml").read_text(encoding="utf-8"))
    assert set(policy.intents) == set(domain["intents"])
    assert policy.target_precision == 0.97
    # A kind is approve-only where an account is needed, not because some of its tweets need one: "when do I get
    # my bill" is an FAQ question, "my bill is wrong" is not, and the answer score tells them apart.
    assert {name for name, rules in policy.intents.items() if rules.faq == "auto"} >= {
        "product_question", "pricing_offer", "moving_house", "order_status", "billing_issue", "contract_change",
    }  # fmt: skip
    for social in ("greeting", "thanks", "praise"):
        assert policy.intent(social).reply is not None
    for never in ("complaint", "outage_report", "request_human", "opt_out", "spam_offtopic", "short_followup",
                  "providing_info"):  # fmt: skip
        assert policy.intent(never).faq == "never"


def test_the_repository_file_is_exactly_what_render_policy_writes() -> None:
    # So `carebot triage calibrate` keeps every comment a lead reads today.
    assert render_policy(load_policy()) == DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def test_render_and_load_round_trip_with_calibration_and_infinite_thresholds(tmp_path: Path) -> None:
    policy = load_policy()
    rules = replace(policy.intents["tech_support"], auto=NEVER)
    policy = replace(
        policy,
        version=7,
        auto=Thresholds(0.8123456789, 0.03),
        intents={**policy.intents, "tech_support": rules},
        calibration=CalibrationInfo(1200, 1000, 812, 0.9741, 0.812, ("product_question",), "2025-01-31"),
    )
    path = tmp_path / "policy.yml"
    save_policy(policy, path)
    assert load_policy(path) == policy
    assert math.isinf(load_policy(path).auto_thresholds("tech_support").min_score)
    assert not list(tmp_path.glob("*.tmp"))


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(_raw())
    change(data)
    return data


ERRORS = [
    ("unknown top-level key", lambda d: d.update(thresholds=1), "unknown key"),
    ("missing version", lambda d: d.pop("version"), "missing key"),
    ("target below 0.5", lambda d: d.update(target_precision=0.3), "target_precision"),
    ("confidence as text", lambda d: d.update(nlu_min_confidence="high"), "nlu_min_confidence"),
    ("missing approve thresholds", lambda d: d["faq"].pop("approve"), "approve"),
    ("score above 2", lambda d: d["faq"]["auto"].update(min_score=2.5), "faq.auto.min_score"),
    ("bad faq mode", lambda d: d["intents"]["thanks"].update(faq="sometimes", reply=None), "faq must be one of"),
    ("priority 5", lambda d: d["intents"]["complaint"].update(priority=5), "priority"),
    ("unknown reply", lambda d: d["intents"]["thanks"].update(reply="faq_answer"), "reply must be one of"),
    ("unknown acknowledgement", lambda d: d["intents"]["complaint"].update(acknowledge="thanks"), "acknowledge"),
    ("reply and faq", lambda d: d["intents"]["thanks"].update(faq="auto"), "exclude each other"),
    ("unknown intent key", lambda d: d["intents"]["complaint"].update(colour="red"), "colour"),
    ("bad intent name", lambda d: d["intents"].update({"Bad Name": {}}), "intent name"),
    ("bad skill", lambda d: d["skills"]["areas"].update(tv="TV team"), "skills.areas.tv"),
    ("bad priority rule", lambda d: d["priority"].update(anger=9), "priority.anger"),
]


@pytest.mark.parametrize(("name", "change", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_a_bad_policy_is_refused_with_the_reason(name: str, change: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(_broken(change))


def test_missing_or_invalid_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("version: [", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
    bad.write_text("- a list", encoding="utf-8")
    with pytest.raises(PolicyError, match=str(bad)):
        load_policy(bad)


def test_thresholds() -> None:
    assert Thresholds(0.8, 0.05).admits(0.8, 0.05)
    assert not Thresholds(0.8, 0.05).admits(0.79, 0.5)
    assert not Thresholds(0.8, 0.05).admits(0.99, 0.04)
    assert not NEVER.admits(1.0, 1.0) and NEVER.describe() == "never"


# ---------------------------------------------------------------- personal data


def test_the_patterns_are_the_nlu_patterns() -> None:
    entities = yaml.safe_load((TRAINING_DATA / "nlu" / "entities.yml").read_text(encoding="utf-8"))
    regexes = {
        item["regex"]: [line.removeprefix("- ") for line in item["examples"].splitlines() if line.strip()]
        for item in entities["nlu"]
        if "regex" in item
    }
    assert regexes == {kind: [pattern] for kind, pattern in PATTERNS.items()}


PERSONAL = [
    ("KT-48213907", ["customer_number"]),
    ("kt48213907", ["customer_number"]),  # Rasa matches case-insensitively, so do we
    ("call 07700 900123", ["phone_number"]),
    ("+44 (0)20 7946 0958", ["phone_number"]),
    ("jo.bloggs+care@example.co.uk", ["email"]),
    ("GB33 BUKB 2020 1555 5555 55", ["iban"]),
    ("KT-48213907 and jo@example.com", ["customer_number", "email"]),
    ("fibre 1000 is 900 Mbps, 0800 numbers are free", []),
    ("KT-4821390", []),
    ("https://kestrel.example/help", []),
]


@pytest.mark.parametrize(("text", "kinds"), PERSONAL)
def test_personal_data_kinds(text: str, kinds: list[str]) -> None:
    assert personal_data_kinds(text) == kinds


def test_found_personal_data_has_positions_and_descriptions() -> None:
    (found,) = find_personal_data("mine is KT-48213907.")
    assert (found.start, found.end, found.value, found.description) == (8, 19, "KT-48213907", "a customer number")
    assert describe_kinds(["email", "iban", "phone_number"]) == (
        "an e-mail address, a bank account number (IBAN) and a phone number"
    )
