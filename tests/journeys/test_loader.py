"""The journey loader: the shipped journeys, a table of bad files, and the config check."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from decisioning.config import DEFAULT_CONFIG, DecisionConfig, load_decision_config
from journeys import (
    DEFAULT_JOURNEYS_DIR,
    BranchStep,
    CandidateSpec,
    Condition,
    DecideStep,
    ExitRule,
    Journey,
    JourneyFileError,
    ScoreTrigger,
    SendStep,
    UpdateProfileStep,
    WaitStep,
    load_journey,
    load_journeys,
    parse_journey,
    validate_against,
)

# Lines 1-3 of every small journey below; its steps start on line 4.
HEAD = "journey: t\ntrigger: {event: signup}\nsteps:\n"
# The rest of a journey whose mistake is above it.
TAIL = "steps: [{id: a, wait: 1h}]\n"
PICK = "  - {id: pick, decide: {candidates: [welcome]}}\n"


@pytest.fixture(scope="module")
def config() -> DecisionConfig:
    return load_decision_config(DEFAULT_CONFIG)


def kinds(journey: Journey) -> list[tuple[str, str]]:
    return [(step.id, step.kind) for step in journey.steps]


# -- the shipped journeys ---------------------------------------------------------------------


def test_the_shipped_journeys_are_the_three_files() -> None:
    journeys = load_journeys(DEFAULT_JOURNEYS_DIR)
    assert sorted(journeys) == ["cart_abandonment", "onboarding", "winback"]
    for name, journey in journeys.items():
        assert journey.source == str(DEFAULT_JOURNEYS_DIR / f"{name}.yaml")


def test_cart_abandonment() -> None:
    journey = load_journey(DEFAULT_JOURNEYS_DIR / "cart_abandonment.yaml")
    assert journey.trigger.event == "add_to_cart"
    assert journey.goal == "purchase"
    assert (journey.entry.reentry, journey.entry.reentry_after) == (True, timedelta(days=7))
    assert journey.exits == (ExitRule(event="unsubscribe"), ExitRule(after=timedelta(days=14)))
    assert journey.max_duration == timedelta(days=14)
    assert kinds(journey) == [
        ("wait_1h", "wait"),
        ("first_nudge", "decide"),
        ("send_first", "send"),
        ("wait_purchase", "wait"),
        ("second_nudge", "decide"),
        ("send_second", "send"),
    ]
    assert journey.step("wait_1h") == WaitStep("wait_1h", duration=timedelta(hours=1))
    first = journey.step("first_nudge")
    assert isinstance(first, DecideStep)
    assert first.candidates == (
        CandidateSpec("cart_reminder", ("email", "sms", "push")),
        CandidateSpec("discount_10", ("email", "sms", "push")),
    )
    assert (first.slots, first.allow_no_send) == (None, True)
    wait = journey.step("wait_purchase")
    assert isinstance(wait, WaitStep)
    assert (wait.until, wait.timeout, wait.on_timeout) == (
        "purchase",
        timedelta(hours=24),
        "second_nudge",
    )
    assert journey.step("send_second") == SendStep("send_second", decision="second_nudge")


def test_onboarding() -> None:
    journey = load_journey(DEFAULT_JOURNEYS_DIR / "onboarding.yaml")
    assert journey.trigger.event == "identify"
    assert (journey.goal, journey.entry.reentry) == (None, False)
    assert kinds(journey) == [
        ("welcome", "decide"),
        ("send_welcome", "send"),
        ("wait_3d", "wait"),
        ("clicked_welcome", "branch"),
        ("tag_engaged", "update_profile"),
        ("new_arrivals", "decide"),
        ("send_new_arrivals", "send"),
    ]
    welcome = journey.step("welcome")
    assert isinstance(welcome, DecideStep)
    assert welcome.candidates == (CandidateSpec("welcome"),)
    assert welcome.slots == ("now", "+1h")
    assert journey.step("wait_3d") == WaitStep("wait_3d", duration=timedelta(days=3))
    branch = journey.step("clicked_welcome")
    assert isinstance(branch, BranchStep)
    assert [(rule.event, rule.goto) for rule in branch.rules] == [("email_click", "tag_engaged")]
    assert branch.otherwise == "new_arrivals"
    tag = journey.step("tag_engaged")
    assert isinstance(tag, UpdateProfileStep)
    assert dict(tag.set) == {"onboarding_engaged": True}


def test_winback() -> None:
    journey = load_journey(DEFAULT_JOURNEYS_DIR / "winback.yaml")
    assert journey.trigger.event is None  # the churn score starts it (issue 8)
    assert journey.trigger.score == ScoreTrigger("nudge-churn", above=0.6, reset_below=0.4)
    assert journey.goal == "purchase"
    assert kinds(journey) == [
        ("offer", "decide"),
        ("send_offer", "send"),
        ("wait_purchase", "wait"),
        ("last_chance", "decide"),
        ("send_last_chance", "send"),
    ]
    offer = journey.step("offer")
    assert isinstance(offer, DecideStep)
    assert [c.message for c in offer.candidates] == ["winback_offer", "discount_10"]
    assert offer.candidates[1].channels is None  # the shorthand: every channel it may go on


def test_every_shipped_journey_fits_the_default_config(config: DecisionConfig) -> None:
    for journey in load_journeys(DEFAULT_JOURNEYS_DIR).values():
        validate_against(journey, config)
    assert config.reward_for("winback").attribution_window == timedelta(days=7)


# -- the format -------------------------------------------------------------------------------


def test_the_long_form_of_every_setting() -> None:
    journey = parse_journey(
        """\
journey: full
description: All of it.
trigger:
  event: add_to_cart
  where: {cart_value: {gte: 20, lt: 500}, currency: GBP}
  features: {vip: {exists: true}, tier: {in: [gold, silver]}}
entry: {reentry: true, reentry_after: 2w}
goal: {event: purchase, where: {value: {gt: 0}}}
exit:
  - {event: complaint, where: {severity: high}}
segments:
  big: {cart_value: {gte: 100}}
steps:
  - {id: pick, decide: {candidates: [welcome], slots: [now], allow_no_send: false}}
  - {id: go, send: {decision: pick}}
  - id: wait
    wait: {until: email_click, where: {link: {ne: unsubscribe}}, timeout: 90m,
           on_event: check, on_timeout: check}
  - id: check
    branch:
      rules:
        - {segment: big, goto: pick}
        - {features: {tier: gold}, goto: tag}
      otherwise: tag
  - {id: tag, update_profile: {set: {seen: 1, note: null}}, next: wait}
""",
        "full.yaml",
    )
    assert journey.trigger.where == (
        Condition("cart_value", "gte", 20),
        Condition("cart_value", "lt", 500),
        Condition("currency", "eq", "GBP"),
    )
    assert journey.trigger.features[1] == Condition("tier", "in", ("gold", "silver"))
    assert journey.entry.reentry_after == timedelta(weeks=2)
    assert (journey.goal, journey.goal_where) == ("purchase", (Condition("value", "gt", 0),))
    assert journey.segments == {"big": (Condition("cart_value", "gte", 100),)}
    wait = journey.step("wait")
    assert isinstance(wait, WaitStep)
    assert (wait.timeout, wait.where) == (
        timedelta(minutes=90),
        (Condition("link", "ne", "unsubscribe"),),
    )
    assert journey.step("tag") == UpdateProfileStep("tag", {"seen": 1, "note": None}, next="wait")
    assert journey.lines["steps[2].wait.timeout"] == 17


def test_a_duration_may_be_a_year_and_a_leap_day() -> None:
    journey = parse_journey(HEAD + "  - {id: a, wait: 366d}\n  - {id: b, wait: 52w}\n", "t.yaml")
    assert [step.duration for step in journey.steps if isinstance(step, WaitStep)] == [
        timedelta(days=366),
        timedelta(weeks=52),
    ]


def test_a_send_may_name_any_decide_step_above_it() -> None:
    text = (
        HEAD
        + PICK
        + "  - {id: other, decide: {candidates: [welcome]}}\n"
        + "  - {id: go, send: {decision: pick}}\n"
    )
    assert parse_journey(text, "t.yaml").step("go") == SendStep("go", "pick")


def test_a_loop_through_a_wait_is_fine() -> None:
    text = (
        HEAD
        + "  - {id: pause, wait: 1d}\n  - {id: tag, update_profile: {set: {a: 1}}, next: pause}\n"
    )
    tag = parse_journey(text, "t.yaml").step("tag")
    assert tag == UpdateProfileStep("tag", {"a": 1}, next="pause")


BAD = [
    # (text, line, field path, part of the message)
    ("", 1, "", "is empty"),
    ("  \n# nothing but a comment\n", 1, "", "is empty"),
    ("journey: t\ntrigger: {event: signup\nsteps: []\n", 3, "", "is not valid YAML"),
    ("- journey: t\n", 1, "", "must be a mapping with the keys journey"),
    ("journey: t\nsteps: [{id: a, wait: 1h}]\n", 1, "trigger", "is required"),
    ("journey: t\ntriger: {event: a}\n", 2, "triger", "allowed: journey, description, trigger"),
    ("journey: t\njourney: u\n", 2, "journey", "is given twice (first on line 1)"),
    ("journey: [t]\ntrigger: {event: a}\n" + TAIL, 1, "journey", "must be a name"),
    ("journey: t\ntrigger: {where: {a: 1}}\nsteps: []\n", 2, "trigger.event", "is required"),
    (HEAD, 3, "steps", "must be a list, not a value"),
    ("journey: t\ntrigger: {event: signup}\nsteps: []\n", 3, "steps", "must not be empty"),
    (HEAD + "  - {id: a, wiat: 1h}\n", 4, "steps[0].wiat", "allowed: id, wait, decide, send"),
    (HEAD + "  - {wait: 1h}\n", 4, "steps[0].id", "is required"),
    (HEAD + "  - {id: a}\n", 4, "steps[0]", "must have one of wait, decide, send, branch"),
    (HEAD + "  - {id: a, wait: 1h, send: {}}\n", 4, "steps[0].send", "is a second kind"),
    (HEAD + "  - {id: a, wait: 1h}\n  - {id: a, wait: 2h}\n", 5, "steps[1].id", "must be unique"),
    (HEAD + "  - {id: a, wait: 1h, next: nowhere}\n", 4, "steps[0].next", "must name a step (a)"),
    (
        HEAD
        + "  - id: a\n    branch:\n      rules: [{event: x, goto: b}]\n  - {id: c, wait: 1h}\n",
        6,
        "steps[0].branch.rules[0].goto",
        "must name a step (a, c), got 'b'",
    ),
    (
        HEAD + "  - id: a\n    branch: {rules: [{event: x, goto: c}], otherwise: d}\n"
        "  - {id: c, wait: 1h}\n",
        5,
        "steps[0].branch.otherwise",
        "must name a step",
    ),
    (
        HEAD + "  - id: a\n    wait: {until: x, timeout: 1h, on_event: zz}\n",
        5,
        "steps[0].wait.on_event",
        "got 'zz'",
    ),
    (
        HEAD + "  - id: a\n    wait:\n      until: x\n      timeout: 1h\n      on_timeout: zz\n",
        8,
        "steps[0].wait.on_timeout",
        "got 'zz'",
    ),
    (HEAD + "  - {id: go, send: {}}\n" + PICK, 4, "steps[0].send", "needs a decide step above it"),
    (
        HEAD + "  - {id: a, wait: 1h}\n" + PICK + "  - {id: go, send: {decision: a}}\n",
        6,
        "steps[2].send.decision",
        "must name a decide step above it (pick), got 'a'",
    ),
    (
        HEAD + "  - {id: go, send: {decision: pick}}\n  - {id: a, wait: 1h}\n" + PICK,
        4,
        "steps[0].send.decision",
        "must name a decide step above it (there are none; pick is steps[2], below it), got 'pick'",
    ),
    (
        HEAD + PICK + "  - {id: go, send: {decision: late}}\n"
        "  - {id: late, decide: {candidates: [welcome]}}\n",
        5,
        "steps[1].send.decision",
        "must name a decide step above it (pick; late is steps[2], below it), got 'late'",
    ),
    (
        HEAD + "  - id: a\n    branch:\n      rules:\n        - {segment: big, goto: a}\n",
        7,
        "steps[0].branch.rules[0].segment",
        "must be one of segments (none are defined), got 'big'",
    ),
    (
        HEAD + "  - id: a\n    branch: {rules: [{event: x, segment: s, goto: a}]}\n",
        5,
        "steps[0].branch.rules[0]",
        "must have exactly one of event, features and segment",
    ),
    (
        HEAD
        + "  - {id: a, branch: {rules: [{event: x, goto: b}]}, next: b}\n  - {id: b, wait: 1h}\n",
        4,
        "steps[0].next",
        "is not allowed on a branch; use otherwise",
    ),
    (HEAD + "  - {id: a, wait: {duration: 1h, until: x}}\n", 4, "steps[0].wait", "exactly one of"),
    (HEAD + "  - id: a\n    wait: {}\n", 5, "steps[0].wait", "must have exactly one of duration"),
    (
        HEAD + "  - id: a\n    wait: {until: x}\n",
        5,
        "steps[0].wait.timeout",
        "is required with until",
    ),
    (
        HEAD + "  - id: a\n    wait: {duration: 1h, on_timeout: a}\n",
        5,
        "steps[0].wait.on_timeout",
        "is only allowed with until",
    ),
    (
        HEAD + "  - id: a\n    wait:\n      until: x\n      timeout: soon\n",
        7,
        "steps[0].wait.timeout",
        "must be a duration like 30m, 2h, 1d, got 'soon'",
    ),
    (
        HEAD + "  - {id: a, wait: 90}\n",
        4,
        "steps[0].wait",
        "must be a duration like 30m, 2h, 1d, got 90",
    ),
    (HEAD + "  - {id: a, wait: 0m}\n", 4, "steps[0].wait", "must be longer than zero"),
    (
        HEAD + "  - {id: a, wait: 99999999999w}\n",
        4,
        "steps[0].wait",
        "must be a duration of at most 366 days, got '99999999999w'",
    ),
    (
        HEAD + "  - id: a\n    wait: {until: x, timeout: 367d}\n",
        5,
        "steps[0].wait.timeout",
        "must be a duration of at most 366 days, got '367d'",
    ),
    (
        "journey: t\ntrigger: {event: a}\nexit: [{after: 53w}]\n" + TAIL,
        3,
        "exit[0].after",
        "must be a duration of at most 366 days, got '53w'",
    ),
    (
        "journey: t\ntrigger: {event: a}\nentry:\n  reentry: true\n"
        "  reentry_after: 99999999999999999999d\n" + TAIL,
        5,
        "entry.reentry_after",
        "must be a duration of at most 366 days",
    ),
    (
        "journey: t\ntrigger:\n  event: a\n  where: {cart_value: {approx: 20}}\n" + TAIL,
        4,
        "trigger.where.cart_value.approx",
        "is not an operator; use eq, ne, gt, gte, lt, lte, in, not_in, exists",
    ),
    (
        "journey: t\ntrigger:\n  event: a\n  features:\n    recency: {lte: six}\n" + TAIL,
        5,
        "trigger.features.recency.lte",
        "must be a number, got 'six'",
    ),
    (
        "journey: t\ntrigger: {event: a, where: {tier: [gold]}}\n" + TAIL,
        2,
        "trigger.where.tier",
        "a list needs in",
    ),
    (
        "journey: t\ntrigger: {event: a}\nentry: {reentry_after: 7d}\n" + TAIL,
        3,
        "entry.reentry_after",
        "needs reentry: true",
    ),
    (
        "journey: t\ntrigger: {event: a}\nexit:\n  - {event: unsubscribe, after: 1d}\n" + TAIL,
        4,
        "exit[0]",
        "exactly one of event and after",
    ),
    (
        HEAD
        + "  - id: pick\n    decide:\n      candidates: [welcome]\n      slots: [now, 18:00]\n",
        7,
        "steps[0].decide.slots[1]",
        "(quote times), got 1080",
    ),
    (
        HEAD + "  - {id: pick, decide: {candidates: []}}\n",
        4,
        "steps[0].decide.candidates",
        "must not be empty",
    ),
    (
        HEAD + "  - id: pick\n    decide:\n      candidates:\n        - {mesage: welcome}\n",
        7,
        "steps[0].decide.candidates[0].mesage",
        "allowed: message, channels",
    ),
    (
        HEAD + "  - {id: a, update_profile: {set: {n: 1}}, next: a}\n",
        4,
        "steps[0].next",
        "makes a loop with no wait step in it (a -> a)",
    ),
    (
        HEAD
        + "  - {id: pause, wait: 1h}\n"
        + "  - {id: check, branch: {rules: [{event: x, goto: pause}]}}\n"
        + "  - {id: tag, update_profile: {set: {n: 1}}}\n"
        + "  - {id: again, update_profile: {set: {n: 2}}, next: check}\n",
        7,
        "steps[3].next",
        "makes a loop with no wait step in it (check -> tag -> again -> check)",
    ),
    ("journey: t\ntrigger: {event: a}\n---\njourney: u\n", 3, "", "is not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD)
def test_a_bad_file_names_its_line_and_field(
    text: str, line: int, field: str, message: str
) -> None:
    where = f"bad.yaml:{line}: {field} " if field else f"bad.yaml:{line}: "
    with pytest.raises(JourneyFileError, match=re.escape(where) + ".*" + re.escape(message)) as err:
        parse_journey(text, "bad.yaml")
    assert (err.value.source, err.value.line, err.value.field) == ("bad.yaml", line, field)


# -- files and directories --------------------------------------------------------------------


def test_names_are_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + PICK)
    (tmp_path / "b.yml").write_text("\n" + HEAD + PICK)
    (tmp_path / "notes.txt").write_text("not a journey")
    with pytest.raises(
        JourneyFileError, match=re.escape(f"{tmp_path / 'b.yml'}:2: journey must be unique; ")
    ):
        load_journeys(tmp_path)
    (tmp_path / "b.yml").unlink()
    assert list(load_journeys(tmp_path)) == ["t"]


def test_a_missing_file_or_directory_is_an_invalid_request(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`path` must be a readable"):
        load_journey(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="`directory` must be a directory"):
        load_journeys(tmp_path / "missing")


# -- against the decision configuration -------------------------------------------------------

CANDIDATES = """\
journey: t
trigger: {event: signup}
steps:
  - id: pick
    decide:
      candidates:
        - welcome
        - {message: discount_10,
           channels: [email, {channel}]}
        - {message}
      slots: [now, "{slot}"]
  - {id: go, send: {}}
"""


@pytest.mark.parametrize(
    ("changes", "line", "field", "message"),
    [
        (
            {"message": "welcom"},
            10,
            "steps[0].decide.candidates[2].message",
            "must be a message of the decision configuration (cart_reminder, discount_10",
        ),
        (
            {"message": "{message: welcom}"},
            10,
            "steps[0].decide.candidates[2].message",
            "got 'welcom'",
        ),
        (
            {"channel": "fax"},
            9,
            "steps[0].decide.candidates[1].channels[1]",
            "must be a channel that discount_10 may go on (email, sms, push, ads), got 'fax'",
        ),
        (
            {"slot": "07:00"},
            11,
            "steps[0].decide.slots[1]",
            "must be a slot of the decision configuration (now, +1h, +3h, 09:00",
        ),
    ],
)
def test_validate_against_names_the_unknown_candidate(
    config: DecisionConfig, changes: dict[str, str], line: int, field: str, message: str
) -> None:
    values = {"message": "new_arrivals", "channel": "push", "slot": "+1h"} | changes
    text = CANDIDATES
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    journey = parse_journey(text, "t.yaml")
    with pytest.raises(
        JourneyFileError, match=re.escape(f"t.yaml:{line}: ") + ".*" + re.escape(message)
    ) as err:
        validate_against(journey, config)
    assert (err.value.source, err.value.line, err.value.field) == ("t.yaml", line, field)


def test_validate_against_accepts_the_known_ones(config: DecisionConfig) -> None:
    text = CANDIDATES.replace("{message}", "new_arrivals").replace("{channel}", "push")
    validate_against(parse_journey(text.replace("{slot}", "+1h"), "t.yaml"), config)
