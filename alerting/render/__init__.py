"""Pure rendering of notifications: plain text, Slack Block Kit, email. No I/O here."""
