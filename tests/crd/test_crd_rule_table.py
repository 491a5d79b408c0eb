"""The rule table of test_crd_rules_server.py covers every CEL rule of the shipped CRDs.

Fast (no server): it reads slice/crds/*.yaml and fails naming each rule without a case, each
case whose rule no longer exists, and each case whose message fragment is not the rule's
(a rule inserted before another shifts the indexes: this catches it).
"""

from __future__ import annotations

from collections import Counter

from crd_rule_cases import CASES, all_rules


def test_every_rule_has_a_case() -> None:
    rules = {r.name: r for r in all_rules()}
    covered = Counter(c.rule for c in CASES)
    problems = [f"no case for {name}: {r.rule!r} (add one to CASES in "
                f"tests/crd/crd_rule_cases.py)" for name, r in rules.items() if name not in covered]
    problems += [f"case for {name}, which no CRD has" for name in covered if name not in rules]
    problems += [f"{n} cases for {name}" for name, n in covered.items() if n > 1]
    for case in CASES:
        rule = rules.get(case.rule)
        if rule is None:
            continue
        if case.fragment not in rule.shown_message:
            problems.append(f"case for {case.rule} expects {case.fragment!r}, which is not in "
                            f"the rule's message {rule.shown_message!r}: index shifted?")
        if rule.reason != case.reason:
            problems.append(f"case for {case.rule} expects reason {case.reason}, the rule "
                            f"has {rule.reason}")
        if rule.transition and case.base is None:
            problems.append(f"{case.rule} is a transition rule: its case needs a base object")
        if rule.path.startswith("status") and case.bad.verb != "status":
            problems.append(f"{case.rule} is a status rule: its bad request must be a status "
                            f"patch (status is a subresource, dropped on create)")
    assert not problems, "\n".join(problems)


def test_rule_count() -> None:
    """A floor, so a broken walk of the schema (finding no rules) cannot pass silently."""
    assert len(all_rules()) >= 50
