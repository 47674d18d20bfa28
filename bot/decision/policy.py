"""The triage policy: thresholds and per-intent rules, read from the versioned file training_data/policy.yml.

`load_policy` refuses a malformed file with one clear PolicyError; `render_policy` writes the same file back,
with its comments, so that `carebot triage calibrate` can rewrite it and a lead can still read it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from bot.yaml_files import read_yaml

Band = Literal["auto", "approve", "human", "ignore"]
Situation = Literal["faq_answer", "dm_handover", "outage_ack", "handoff_ack", "thanks", "greeting"]
FaqMode = Literal["auto", "approve", "never"]

BANDS: tuple[Band, ...] = ("auto", "approve", "human", "ignore")
SITUATIONS: tuple[Situation, ...] = ("faq_answer", "dm_handover", "outage_ack", "handoff_ack", "thanks", "greeting")
FAQ_MODES: tuple[FaqMode, ...] = ("auto", "approve", "never")
REPLY_SITUATIONS = ("greeting", "thanks")  # templated replies the bot may post on its own
ACK_SITUATIONS = ("outage_ack", "handoff_ack", "dm_handover")  # posted while a human takes over
MOST_URGENT, ROUTINE = 1, 4

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent.parent / "training_data" / "policy.yml"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class PolicyError(ValueError):
    """The policy file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Thresholds:
    """An FAQ answer qualifies when its score and its margin over the next entry both reach these."""

    min_score: float
    min_margin: float

    def admits(self, score: float, margin: float) -> bool:
        return score >= self.min_score and margin >= self.min_margin

    @property
    def never(self) -> bool:
        return math.isinf(self.min_score) or math.isinf(self.min_margin)

    def describe(self) -> str:
        if self.never:
            return "never"
        return f"score ≥ {self.min_score:.2f}, margin ≥ {self.min_margin:.2f}"


NEVER = Thresholds(math.inf, math.inf)


@dataclass(frozen=True)
class IntentPolicy:
    faq: FaqMode = "never"
    auto: Thresholds | None = None  # None: the global thresholds
    approve: Thresholds | None = None
    reply: Situation | None = None  # a templated reply the bot may post on its own
    acknowledge: Situation | None = None  # what the bot posts while a human takes over
    priority: int = ROUTINE
    skill: str | None = None


@dataclass(frozen=True)
class PriorityRules:
    unclear: int = 3  # the starting priority when there is no NLU or the kind of message is unclear
    personal_data: int = 3  # at least this urgent when the customer posted personal data in public
    anger: int = 1  # steps up for anger (capitals, !!!, angry emoji)
    repeat_contacts: int = 2  # this many earlier contacts: one step up
    long_wait_minutes: int = 60  # waiting this long: one step up


@dataclass(frozen=True)
class CalibrationInfo:
    """How the thresholds were fitted, and what they achieved on the validation data."""

    examples: int
    in_scope: int
    answered: int
    precision: float | None  # of the automatic answers on validation (None: nothing answered)
    coverage: float  # the share of in-scope validation messages answered automatically
    own_thresholds: tuple[str, ...] = ()  # intents with enough examples for thresholds of their own
    calibrated_on: str | None = None


@dataclass(frozen=True)
class Policy:
    version: int
    target_precision: float
    nlu_min_confidence: float
    auto: Thresholds
    approve: Thresholds
    intents: Mapping[str, IntentPolicy]
    priority: PriorityRules = field(default_factory=PriorityRules)
    skill_areas: Mapping[str, str] = field(default_factory=dict)  # product or FAQ tag → agent skill
    default_skill: str = "general"
    calibration: CalibrationInfo | None = None
    unclear_auto: Thresholds = field(default_factory=lambda: NEVER)  # auto for a message of unclear kind
    social_min_confidence: float = 0.8  # a greeting or thank-you gets a reply only this sure of its kind
    acknowledge_min_confidence: float = 0.85  # an acknowledgement is posted only this sure of the kind
    spam_min_confidence: float = 0.8  # spam is dropped only this sure; else a person glances at it
    own_handles: tuple[str, ...] = ()  # our account's handles: other @mentions suggest another company

    def intent(self, name: str | None) -> IntentPolicy:
        return self.intents.get(name, IntentPolicy()) if name else IntentPolicy()

    def auto_thresholds(self, intent: str | None) -> Thresholds:
        return self.intent(intent).auto or self.auto

    def approve_thresholds(self, intent: str | None) -> Thresholds:
        return self.intent(intent).approve or self.approve


# ---------------------------------------------------------------- loading


def _check_keys(
    where: str, data: Any, allowed: set[str], required: set[str] | frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PolicyError(f"{where} must be a mapping, not {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(data))
    if missing:
        raise PolicyError(f"{where}: missing key(s) {', '.join(missing)}")
    return data


def _number(where: str, value: Any, low: float, high: float, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where} must be a number, not {value!r}")
    number = float(value)
    if allow_inf and number == math.inf:
        return number
    if not low <= number <= high:
        raise PolicyError(f"{where} must be between {low} and {high}{' or .inf' if allow_inf else ''}, not {value!r}")
    return number


def _integer(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{where} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise PolicyError(f"{where} must be a lower-case name (letters, digits, _ and -), not {value!r}")
    return value


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PolicyError(f"{where} must be one of {', '.join(choices)}, not {value!r}")
    return cast(str, value)


def _thresholds(where: str, data: Any) -> Thresholds:
    data = _check_keys(where, data, {"min_score", "min_margin"}, {"min_score", "min_margin"})
    return Thresholds(
        _number(f"{where}.min_score", data["min_score"], -1.0, 2.0, allow_inf=True),
        _number(f"{where}.min_margin", data["min_margin"], 0.0, 2.0, allow_inf=True),
    )


def _intent(name: str, data: Any) -> IntentPolicy:
    where = f"intents.{name}"
    data = _check_keys(where, data or {}, {"faq", "auto", "approve", "reply", "acknowledge", "priority", "skill"})
    reply = data.get("reply")
    acknowledge = data.get("acknowledge")
    return IntentPolicy(
        faq=cast(FaqMode, _choice(f"{where}.faq", data.get("faq", "never"), FAQ_MODES)),
        auto=_thresholds(f"{where}.auto", data["auto"]) if data.get("auto") is not None else None,
        approve=_thresholds(f"{where}.approve", data["approve"]) if data.get("approve") is not None else None,
        reply=cast(Situation, _choice(f"{where}.reply", reply, REPLY_SITUATIONS)) if reply is not None else None,
        acknowledge=(
            cast(Situation, _choice(f"{where}.acknowledge", acknowledge, ACK_SITUATIONS))
            if acknowledge is not None
            else None
        ),
        priority=_integer(f"{where}.priority", data.get("priority", ROUTINE), MOST_URGENT, ROUTINE),
        skill=_name(f"{where}.skill", data["skill"]) if data.get("skill") is not None else None,
    )


def _calibration(data: Any) -> CalibrationInfo | None:
    if data is None:
        return None
    keys = {"examples", "in_scope", "answered", "precision", "coverage", "own_thresholds", "calibrated_on"}
    data = _check_keys("calibration", data, keys, {"examples", "in_scope", "answered", "coverage"})
    own = data.get("own_thresholds") or []
    if not isinstance(own, list):
        raise PolicyError("calibration.own_thresholds must be a list of intent names")
    precision = data.get("precision")
    on = data.get("calibrated_on")
    return CalibrationInfo(
        examples=_integer("calibration.examples", data["examples"], 0, 10**9),
        in_scope=_integer("calibration.in_scope", data["in_scope"], 0, 10**9),
        answered=_integer("calibration.answered", data["answered"], 0, 10**9),
        precision=None if precision is None else _number("calibration.precision", precision, 0.0, 1.0),
        coverage=_number("calibration.coverage", data["coverage"], 0.0, 1.0),
        own_thresholds=tuple(_name("calibration.own_thresholds", name) for name in own),
        calibrated_on=None if on is None else str(on),
    )


def policy_from_dict(data: Any) -> Policy:
    """A Policy from the parsed YAML; raises PolicyError naming the first problem."""
    top = {
        "version", "target_precision", "nlu_min_confidence", "faq", "intents", "priority", "skills", "calibration",
        "social_min_confidence", "acknowledge_min_confidence", "spam_min_confidence", "own_handles",
    }  # fmt: skip
    data = _check_keys("the policy", data, top, {"version", "target_precision", "nlu_min_confidence", "faq"})
    faq = _check_keys("faq", data["faq"], {"auto", "approve", "unclear"}, {"auto", "approve"})
    handles = data.get("own_handles") or []
    if not isinstance(handles, list) or not all(isinstance(h, str) and h.strip() for h in handles):
        raise PolicyError("own_handles must be a list of the account's handles")
    intents_data = data.get("intents") or {}
    if not isinstance(intents_data, dict):
        raise PolicyError("intents must be a mapping of intent name to its rules")
    priority = _check_keys("priority", data.get("priority") or {}, set(PriorityRules.__dataclass_fields__))
    skills = _check_keys("skills", data.get("skills") or {}, {"default", "areas"})
    areas = skills.get("areas") or {}
    if not isinstance(areas, dict):
        raise PolicyError("skills.areas must be a mapping of product or FAQ tag to skill")
    policy = Policy(
        version=_integer("version", data["version"], 1, 10**9),
        target_precision=_number("target_precision", data["target_precision"], 0.5, 1.0),
        nlu_min_confidence=_number("nlu_min_confidence", data["nlu_min_confidence"], 0.0, 1.0),
        auto=_thresholds("faq.auto", faq["auto"]),
        approve=_thresholds("faq.approve", faq["approve"]),
        intents={_name("intent name", name): _intent(name, rules) for name, rules in intents_data.items()},
        priority=PriorityRules(
            unclear=_integer("priority.unclear", priority.get("unclear", 3), MOST_URGENT, ROUTINE),
            personal_data=_integer("priority.personal_data", priority.get("personal_data", 3), MOST_URGENT, ROUTINE),
            anger=_integer("priority.anger", priority.get("anger", 1), 0, 3),
            repeat_contacts=_integer("priority.repeat_contacts", priority.get("repeat_contacts", 2), 1, 1000),
            long_wait_minutes=_integer("priority.long_wait_minutes", priority.get("long_wait_minutes", 60), 1, 10**6),
        ),
        skill_areas={_name("skills.areas key", k): _name(f"skills.areas.{k}", v) for k, v in areas.items()},
        default_skill=_name("skills.default", skills.get("default", "general")),
        calibration=_calibration(data.get("calibration")),
        unclear_auto=_thresholds("faq.unclear", faq["unclear"]) if faq.get("unclear") is not None else NEVER,
        social_min_confidence=_number("social_min_confidence", data.get("social_min_confidence", 0.8), 0.0, 1.0),
        acknowledge_min_confidence=_number(
            "acknowledge_min_confidence", data.get("acknowledge_min_confidence", 0.85), 0.0, 1.0
        ),
        spam_min_confidence=_number("spam_min_confidence", data.get("spam_min_confidence", 0.8), 0.0, 1.0),
        own_handles=tuple(h.strip().lstrip("@") for h in handles),
    )
    for name, rules in policy.intents.items():
        if rules.reply and rules.faq != "never":
            raise PolicyError(f"intents.{name}: a templated reply and FAQ answers exclude each other")
    return policy


def load_policy(path: Path = DEFAULT_POLICY_PATH) -> Policy:
    """Read and check the policy file."""
    data = read_yaml(path, "policy file", PolicyError)
    try:
        return policy_from_dict(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc


# ---------------------------------------------------------------- writing

# A line of explanation per intent, written next to its rules.
_INTENT_NOTES = {
    "greeting": "a hello on its own gets a hello back",
    "praise": "praise on its own gets a thank-you back",
    "short_followup": "\"I did.\", \"yes\", \"DM sent\": context for whoever holds the thread",
    "providing_info": "details they were asked for: for the person who asked",
    "thanks": "a thank-you gets a short reply, at most once per conversation",
    "product_question": "the FAQ's home ground",
    "pricing_offer": "prices and offers are in the FAQ",
    "tech_support": "how-to fixes are in the FAQ; a fault on one line is not",
    "moving_house": "general moving questions are in the FAQ; a move itself needs the account",
    "order_status": "how orders and engineer visits work is in the FAQ; one order is not",
    "billing_issue": "\"when do I get my bill\" is in the FAQ; \"my bill is wrong\" is not",
    "account_access": "log-in and password how-tos are in the FAQ",
    "contract_change": "\"can I keep my number\" is in the FAQ; a change itself needs the account",
    "cancellation": "notice periods and PAC codes are in the FAQ; a customer about to leave is not",
    "outage_report": "acknowledged only when the words say our service is down; agents follow up",
    "complaint": "a person answers a complaint",
    "request_human": "they asked for a person",
    "answer_not_helpful": "the bot already failed once",
    "opt_out": "Rasa's guess alone records no opt-out: a person reads it",
    "spam_offtopic": "dropped when sure (spam_min_confidence), else low priority for a person",
}

_HEADER = """\
# carebot triage policy: when the bot answers a tweet on its own (auto), when it drafts an answer that an
# agent sends with one click (approve), and when a person takes over (human). Read by bot/decision/triage.py.
# `carebot triage calibrate` rewrites this file: it fits the thresholds on validation data, keeps every
# other setting, and bumps the version. Edit the rules by hand; let calibration set the numbers.
#
# Hard rules come before anything here: our own tweets, explicit opt-outs and spam are never answered; a
# thread a person holds, a reply under an agent's reply and a DM go to people; personal data moves to DM;
# keyword-search hits (not addressed to us) go to people only; the bot replies at most once per conversation;
# a social reply only to a tweet that is nothing else; without an NLU parse nothing is automatic.
#
# Scores are answer scores (higher is surer); the margin is how far the FAQ search's best entry is ahead of
# the next one. An FAQ answer qualifies when both reach the thresholds. `.inf` means never.
"""


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, int):
        return str(value)
    return yaml.safe_dump(value, default_style=None, width=10**6).strip().removesuffix("...").strip()


def _flow(items: dict[str, Any]) -> str:
    parts = []
    for key, value in items.items():
        parts.append(f"{key}: {_flow(value) if isinstance(value, dict) else _scalar(value)}")
    return "{" + ", ".join(parts) + "}"


def _thresholds_dict(thresholds: Thresholds) -> dict[str, Any]:
    return {"min_score": thresholds.min_score, "min_margin": thresholds.min_margin}


def _intent_dict(rules: IntentPolicy) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if rules.reply:
        data["reply"] = rules.reply
    else:
        data["faq"] = rules.faq
    for key in ("auto", "approve"):
        value = getattr(rules, key)
        if value is not None:
            data[key] = _thresholds_dict(value)
    if rules.acknowledge:
        data["acknowledge"] = rules.acknowledge
    data["priority"] = rules.priority
    if rules.skill:
        data["skill"] = rules.skill
    return data


def render_policy(policy: Policy) -> str:
    """The policy as the commented YAML file that load_policy reads back to an equal Policy."""
    lines = [_HEADER.rstrip("\n"), f"version: {policy.version}", ""]
    lines += [
        "# The bot posts on its own only where its answers were right at least this often on validation data.",
        f"target_precision: {_scalar(policy.target_precision)}",
        "",
        "# Below this NLU confidence (or when Rasa's FallbackClassifier fires) the kind of message is unclear:",
        "# nothing is automatic; an agent gets at most a draft FAQ answer.",
        f"nlu_min_confidence: {_scalar(policy.nlu_min_confidence)}",
        "",
        "# A greeting, thank-you or praise gets a reply only when it is nothing else and Rasa is this sure of it;",
        "# an acknowledgement (outage, handoff) is a public post too and needs this much (1.0: none, and calibration",
        "# leaves them off; on real care threads of other brands a bar of 0.9999 acknowledged praise as a complaint);",
        "# spam is dropped only this sure (else a person glances at it, at low priority).",
        f"social_min_confidence: {_scalar(policy.social_min_confidence)}",
        f"acknowledge_min_confidence: {_scalar(policy.acknowledge_min_confidence)}",
        f"spam_min_confidence: {_scalar(policy.spam_min_confidence)}",
        "",
        "# Our account's handles: a tweet that @mentions other accounts may be about another company.",
        f"own_handles: [{', '.join(policy.own_handles)}]",
        "",
        "# Thresholds on the answer score (bot/decision/answer_score.py: the FAQ intent head's probability of the",
        "# best entry, 0 to 1) for every intent without its own; `unclear` is the bar for an automatic answer when",
        "# Rasa is unsure of the kind of message.",
        "faq:",
        f"  auto: {_flow(_thresholds_dict(policy.auto))}",
        f"  approve: {_flow(_thresholds_dict(policy.approve))}",
        f"  unclear: {_flow(_thresholds_dict(policy.unclear_auto))}",
        "",
        "# Per kind of message (the intents of training_data/domain.yml):",
        "#   faq          auto: may be answered from the FAQ automatically; approve: at most a draft that an agent",
        "#                sends; never: an FAQ answer is not what it needs (it goes to a person).",
        "#   auto, approve  thresholds of its own instead of the ones above.",
        "#   reply        a templated reply the bot may post on its own (training_data/tone.yml).",
        "#   acknowledge  what the bot posts while a person takes over (outage_ack, handoff_ack).",
        "#   priority     1 = most urgent … 4 = routine, before the cues in `priority` below.",
        "#   skill        the agent skill when no product or FAQ tag names one.",
        "intents:",
    ]
    width = max((len(name) for name in policy.intents), default=0) + 1
    for name, rules in policy.intents.items():
        note = _INTENT_NOTES.get(name)
        line = f"  {(name + ':').ljust(width)} {_flow(_intent_dict(rules))}"
        lines.append(f"{line}  # {note}" if note else line)
    priority = policy.priority
    lines += [
        "",
        "# Priority: 1 = most urgent … 4 = routine. A ticket starts at its intent's priority (`unclear` when there",
        "# is no NLU or the kind is unclear), is at least `personal_data` when personal data was posted in public,",
        "# and moves up `anger` steps for capitals, !!! or angry emoji, one step for `repeat_contacts` earlier",
        "# contacts, and one step after `long_wait_minutes` of waiting.",
        "priority:",
        f"  unclear: {priority.unclear}",
        f"  personal_data: {priority.personal_data}",
        f"  anger: {priority.anger}",
        f"  repeat_contacts: {priority.repeat_contacts}",
        f"  long_wait_minutes: {priority.long_wait_minutes}",
        "",
        "# Agent skills: a product the customer names (NLU product entities) or the FAQ entry's tags, mapped to",
        "# the skill of the agents who handle it; else the intent's skill; else the default.",
        "skills:",
        f"  default: {policy.default_skill}",
        "  areas:",
    ]
    lines += [f"    {area}: {skill}" for area, skill in policy.skill_areas.items()]
    lines += ["", "# What the last calibration fitted on, and what its thresholds achieved there."]
    info = policy.calibration
    if info is None:
        lines.append("calibration: null  # not calibrated yet: the thresholds above are hand-set starting values")
    else:
        lines += [
            "calibration:",
            f"  calibrated_on: {_scalar(info.calibrated_on)}",
            f"  examples: {info.examples}",
            f"  in_scope: {info.in_scope}",
            f"  answered: {info.answered}",
            f"  precision: {_scalar(info.precision)}",
            f"  coverage: {_scalar(info.coverage)}",
            f"  own_thresholds: [{', '.join(info.own_thresholds)}]",
        ]
    return "\n".join(lines) + "\n"


def save_policy(policy: Policy, path: Path = DEFAULT_POLICY_PATH) -> None:
    """Write the policy file (atomically: a reader never sees half a file)."""
    text = render_policy(policy)
    policy_from_dict(yaml.safe_load(text))  # never write a file that does not load
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
