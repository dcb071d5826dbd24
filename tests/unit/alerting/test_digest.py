"""Daily digest rendering with exact figures (Slack Block Kit and email)."""

from __future__ import annotations

from datetime import date

from alerting.digest import (
    BudgetLine,
    DigestAlert,
    DigestSummary,
    SpendLine,
    render_digest_email,
    render_digest_slack,
)
from tests.unit.alerting.factories import at

SUMMARY = DigestSummary(
    day=date(2025, 3, 14),
    timezone="UTC",
    total_cost_nusd=12_345_678_901,  # = 8.000000000 + 4.345678901
    by_service=(
        SpendLine("checkout", 8_000_000_000, 1234),
        SpendLine("search_*beta*", 4_345_678_901, 56),
    ),
    by_model=(SpendLine("gpt-4o", 9_005_000_000), SpendLine("claude-sonnet-4", 3_340_678_901)),
    budgets=(
        BudgetLine("fleet-daily", 1_900_000_000, 2_000_000_000, "2025-03-14"),
        BudgetLine("monthly", 333_333_333_333, 1_000_000_000_000, "March 2025"),
    ),
    alerts=(
        DigestAlert("critical", "Budget fleet-daily reached 95%", at(0)),
        DigestAlert("warning", "Spend spike on <search>", at(3600), status="resolved"),
    ),
)


def test_slack_digest_exact() -> None:
    msg = render_digest_slack(SUMMARY)
    assert msg.text == "[spendwatch DIGEST] 2025-03-14: $12.35 spent, 2 alerts"
    assert list(msg.blocks) == [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": "spendwatch daily digest \u2014 2025-03-14 (UTC)",
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Total spend:* $12.35"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*By service*\n\u2022 checkout: $8.00 (1,234 requests)"
                "\n\u2022 search\u02cd\u2217beta\u2217: $4.35 (56 requests)",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*By model*\n\u2022 gpt-4o: $9.00\n\u2022 claude-sonnet-4: $3.34",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Budgets*\n\u2022 fleet-daily [2025-03-14]: $1.90 of $2.00 (95%)"
                "\n\u2022 monthly [March 2025]: $333.33 of $1,000.00 (33.3%)",
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Alerts (2)*"
                "\n\u2022 [CRITICAL] Budget fleet-daily reached 95% (2025-03-14 10:00 UTC)"
                "\n\u2022 [RESOLVED] Spend spike on &lt;search&gt; (2025-03-14 11:00 UTC)",
            },
        },
    ]


def test_email_digest_exact() -> None:
    mail = render_digest_email(SUMMARY)
    assert mail.subject == "[spendwatch DIGEST] 2025-03-14: $12.35 spent, 2 alerts"
    assert mail.text == (
        "spendwatch daily digest for 2025-03-14 (UTC)\n"
        "\n"
        "Total spend: $12.35\n"
        "\n"
        "By service:\n"
        "  - checkout: $8.00 (1,234 requests)\n"
        "  - search_*beta*: $4.35 (56 requests)\n"
        "\n"
        "By model:\n"
        "  - gpt-4o: $9.00\n"
        "  - claude-sonnet-4: $3.34\n"
        "\n"
        "Budgets:\n"
        "  - fleet-daily [2025-03-14]: $1.90 of $2.00 (95%)\n"
        "  - monthly [March 2025]: $333.33 of $1,000.00 (33.3%)\n"
        "\n"
        "Alerts (2):\n"
        "  - [CRITICAL] Budget fleet-daily reached 95% (2025-03-14 10:00 UTC)\n"
        "  - [RESOLVED] Spend spike on <search> (2025-03-14 11:00 UTC)\n"
    )
    assert "<li>[RESOLVED] Spend spike on &lt;search&gt; (2025-03-14 11:00 UTC)</li>" in mail.html
    assert "<p><b>Total spend:</b> $12.35</p>" in mail.html


def test_long_lists_are_cut_with_a_count() -> None:
    many = DigestSummary(
        day=date(2025, 3, 14),
        timezone="Europe/Paris",
        total_cost_nusd=0,
        by_service=tuple(SpendLine(f"s{i}", 1_000_000_000) for i in range(13)),
        budgets=(BudgetLine("zero", 5, 0),),
    )
    text = render_digest_email(many).text
    assert "  - s9: $1.00\n  - \u2026 and 3 more\n" in text
    assert "  - zero: $0.00 of $0.00 (no limit)\n" in text
    assert (
        render_digest_email(many).subject == "[spendwatch DIGEST] 2025-03-14: $0.00 spent, 0 alerts"
    )
