"""The Prometheus files of conf/prometheus/, checked with Debian's promtool:
the rules load (`promtool check rules`), the fleet's scrape config loads
with its rules (`promtool check config`), and every alert fires and stays
quiet where tests/prometheus/*.test.yaml say (`promtool test rules`, on
synthetic series). test_alerts_prometheus.py runs the rules in a real
Prometheus against a real tlsterm."""

import shutil

import pytest
import yaml

from tlsterm_harness import REPO, run, text

pytestmark = pytest.mark.no_tlsterm

PROMETHEUS_DIR = REPO / "conf/prometheus"
RULES = PROMETHEUS_DIR / "tlsterm-alerts.yaml"
UNIT_TESTS = sorted((REPO / "tests/prometheus").glob("*.test.yaml"))
SEVERITIES = {"critical", "warning", "info"}


def promtool(*args, timeout=120):
    """promtool runs Debian's promtool (scripts/install-deps.sh test installs
    the prometheus package) and returns the CompletedProcess."""
    assert shutil.which("promtool"), "no promtool: run scripts/install-deps.sh test"
    return run(["promtool", *args], timeout=timeout)


def alerting_rules():
    """alerting_rules returns every alerting rule of the shipped file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_check_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, text(result)
    assert b"SUCCESS" in result.stdout, text(result)


def test_every_alert_says_how_bad_and_what_to_do():
    rules = alerting_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        # The summary is fixed text an operator can act on; the description
        # carries the labels of the series that fired.
        assert annotations.get("summary", "").strip(), rule["alert"]
        assert "{{" not in annotations["summary"], rule["alert"]
        assert "{{ $labels." in annotations.get("description", ""), rule["alert"]


def test_check_fleet_config():
    """The shipped scrape config loads, with the rules file it names and a
    target file, and without a warning."""
    result = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yaml")
    assert result.returncode == 0, text(result)
    assert b"WARNING" not in result.stdout + result.stderr, text(result)
    assert b"SUCCESS: 1 rule files found" in result.stdout, text(result)


def test_unit_tests_cover_every_alert():
    """Each alert has a promtool test in which it fires and one in which it
    stays quiet."""
    fires, quiet = set(), set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - fires == set(), "never seen firing"
    assert names - quiet == set(), "never seen quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_promtool_unit_tests():
    assert UNIT_TESTS, "no tests/prometheus/*.test.yaml"
    result = promtool("test", "rules", *UNIT_TESTS, timeout=300)
    assert result.returncode == 0, text(result)
    assert result.stdout.count(b"SUCCESS") == len(UNIT_TESTS), text(result)
