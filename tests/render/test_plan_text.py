from reconciler.plan.differ import ABSENT, FieldChange
from reconciler.plan.model import Action, Change, JobRef, Plan, PlanProblem, Reason
from reconciler.render.plan_text import render_plan
from reconciler.render.style import Style
from reconciler.text import clean, key_labels


def change(action: Action, key: str = "k", **kw) -> Change:
    return Change(address=f"p/l/{key}", key=key, project="p", location="l", action=action,
                  reason=kw.pop("reason", Reason.NEW_KEY), detail=kw.pop("detail", "why"), **kw)


def test_clean_strips_terminal_escapes():
    assert clean("a\x1b[31mred\x07") == "a?[31mred?"


def test_plan_text_has_blocks_reasons_field_diffs_and_summary():
    plan = Plan(changes=[
        change(Action.CREATE, "new", after={"baseModel": "m", "labels": {"team": "x"}}),
        change(Action.REPLACE, "old", reason=Reason.SPEC_CHANGED, detail="spec changed",
               job=JobRef("projects/1/locations/l/tuningJobs/2", "JOB_STATE_RUNNING"),
               field_changes=(FieldChange("description", ABSENT, "v2"),)),
        change(Action.NOOP, "failed", reason=Reason.JOB_FAILED_REPORTED, detail="job FAILED; onFailure=report"),
    ])
    text = render_plan(plan, Style(False))
    assert "  # new (p/l) will be created\n  + new\n      reason: why\n      + baseModel: \"m\"\n" in text
    assert "      + labels.team: \"x\"" in text
    assert "  -/+ old  projects/1/locations/l/tuningJobs/2 [RUNNING]" in text
    assert '      ~ description: (unset) -> "v2"' in text
    assert "  - failed: job FAILED; onFailure=report" in text
    assert text.endswith("Plan: 1 to create, 1 to replace, 0 to cancel, 0 to rebase.\n")
    assert "\x1b[" not in text


def test_colour_only_when_enabled_and_keys_are_cleaned():
    plan = Plan(changes=[change(Action.CANCEL, "evil\x1b]0;pwned\x07")],
                problems=[PlanProblem("p/l/x", "refused")])
    coloured = render_plan(plan, Style(True))
    assert "\x1b[31m-\x1b[0m" in coloured and "\x1b]0;" not in coloured
    assert "Error: p/l/x: refused" in coloured


def test_no_changes():
    assert render_plan(Plan(changes=[change(Action.NOOP, reason=Reason.UNCHANGED)]), Style(False)) == "No changes.\n"


def test_key_labels_add_the_location_only_where_a_key_repeats():
    labels = key_labels([("p/us-central1/faq", "faq", "us-central1"), ("p/europe-west4/faq", "faq", "europe-west4"),
                         ("p/us-central1/solo", "solo", "us-central1"), ("p/us-central1/x", "x\x1b[2J", "us-central1")])
    assert labels == {"p/us-central1/faq": "faq (us-central1)", "p/europe-west4/faq": "faq (europe-west4)",
                      "p/us-central1/solo": "solo", "p/us-central1/x": "x?[2J"}


def test_a_problem_says_how_to_apply_the_other_keys_meanwhile():
    plan = Plan(changes=[change(Action.NOOP, key="a", reason=Reason.UNCHANGED), change(Action.CREATE, key="b")],
                problems=[PlanProblem("p/l/a", "refused")])
    text = render_plan(plan, Style(False))
    assert "Error: p/l/a: refused\nNothing is applied while a problem stands; `--target KEY` applies other keys" in text
    alone = render_plan(Plan(changes=[change(Action.NOOP, key="a", reason=Reason.UNCHANGED)],
                             problems=[PlanProblem("p/l/a", "refused")]), Style(False))
    assert "--target" not in alone
