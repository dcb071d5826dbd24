"""The read-only rule for ``spendwatch sql`` and ``POST /sql``."""

from __future__ import annotations

import pytest

from sinks.readonly import ReadOnlyQueryError, check_read_only, strip_trailing_semicolon


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select count() from usage_events",
        "   \n\tSELECT 1",
        "SELECT 1;",
        "SELECT 1 ;  \n",
        "-- spend today\nSELECT 1",
        "/* header */ SELECT 1 /* trailer */",
        "# hash comment\nSELECT 1",
        "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
        "with x as (select 2) select * from x",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SHOW TABLES",
        "DESCRIBE TABLE usage_events",
        "DESC usage_events",
        "EXPLAIN SELECT 1",
        "EXISTS TABLE alerts",
        "SELECT 'DROP TABLE x; DELETE' AS s",
        'SELECT "weird;name" FROM t',
        "SELECT 'it''s' AS s",
        "SELECT 'a\\'b; DROP' AS s",
        "SELECT 1 -- ; DROP TABLE x",
        "SELECT url_path FROM t",
        "SELECT domain(url) FROM t",
        "SELECT name FROM system.tables WHERE database = currentDatabase()",
        "SELECT * FROM system.columns",
        "SELECT * FROM `system`.`numbers` LIMIT 3",
        "SHOW SETTINGS LIKE 'max_%'",
        "SELECT $$file('x')$$ AS s",
        "SELECT $tag$ ; DROP TABLE x $tag$ AS s",
        'SELECT `weird;name`, "a b" FROM t',
        "SELECT settings FROM t",
    ],
)
def test_read_only_queries_pass(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("", "empty"),
        ("  ; ;", "empty"),
        ("-- only a comment", "empty"),
        ("SELECT 1; DROP TABLE x", "single_statement"),
        ("select 1;drop table x;", "single_statement"),
        ("SELECT 1; SELECT 2", "single_statement"),
        ("DROP TABLE usage_events", "read_only_statement"),
        ("drop table usage_events", "read_only_statement"),
        ("  \n insert into alerts values (1)", "read_only_statement"),
        ("/* SELECT */ DELETE FROM usage_events WHERE 1", "read_only_statement"),
        ("-- SELECT\nTRUNCATE TABLE deadletter", "read_only_statement"),
        ("ALTER TABLE usage_events DELETE WHERE 1", "read_only_statement"),
        ("SET readonly = 0", "read_only_statement"),
        ("OPTIMIZE TABLE usage_events FINAL", "read_only_statement"),
        ("SYSTEM STOP MERGES", "read_only_statement"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "read_only_statement"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "no_outfile"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "no_external_access"),
        ("select * from URL('http://x', CSV)", "no_external_access"),
        ("WITH a AS (SELECT * FROM s3('http://b/k')) SELECT * FROM a", "no_external_access"),
        ("SELECT * FROM remote('h', system.one)", "no_external_access"),
        # quoting tricks: a heredoc hiding a quote, quoted names of functions and tables
        ("SELECT $$'$$, * FROM file('/etc/passwd', 'LineAsString') -- '", "no_external_access"),
        ("SELECT * FROM `file`('/etc/passwd', 'LineAsString')", "no_external_access"),
        ("SELECT * FROM \"url\"('http://x', CSV)", "no_external_access"),
        ("SELECT * FROM file/**/('/etc/passwd')", "no_external_access"),
        ("SELECT * FROM merge('system', '^processes$')", "no_external_access"),
        ("SELECT $x$ unterminated", "unterminated"),
        # settings changes
        ("SELECT 1 SETTINGS readonly = 0", "no_settings"),
        ("select 1 settings final=0, max_execution_time = 0", "no_settings"),
        ("SELECT 1 SETTINGS/**/max_memory_usage = 1", "no_settings"),
        # system tables beyond the allowed ones
        ("SELECT * FROM system.processes", "system_table"),
        ("SELECT query FROM system.query_log", "system_table"),
        ("SELECT * FROM `system`.`stack_trace`", "system_table"),
        ('SELECT * FROM "system" . "users"', "system_table"),
        ("SELECT * FROM view(SELECT * FROM system.disks)", "system_table"),
        ("SHOW PROCESSLIST", "system_table"),
        ("show grants", "system_table"),
        ("SHOW CREATE USER default", "system_table"),
        # multi-statement tricks around comments and escapes
        ("SELECT 1 /* /* */ ; DROP TABLE usage_events -- */", "single_statement"),
        ("SELECT 1 -- x\n; DROP TABLE usage_events", "single_statement"),
        ("SELECT '\\'' ; DROP TABLE usage_events -- '", "single_statement"),
        ("SELECT 1 INTO/**/OUTFILE 'x'", "no_outfile"),
        ("SELECT 'unterminated", "unterminated"),
        ("SELECT 1 /* open", "unterminated"),
    ],
)
def test_refused_queries_name_the_rule(sql: str, rule: str) -> None:
    with pytest.raises(ReadOnlyQueryError) as info:
        check_read_only(sql)
    assert info.value.rule == rule
    assert str(info.value)


def test_refusal_message_names_the_allowed_statements() -> None:
    with pytest.raises(ReadOnlyQueryError) as info:
        check_read_only("DROP TABLE x")
    message = str(info.value)
    assert "SELECT" in message and "DROP" in message


def test_strip_trailing_semicolon() -> None:
    assert strip_trailing_semicolon("SELECT 1 ; ;\n") == "SELECT 1"
    assert strip_trailing_semicolon("SELECT ';'") == "SELECT ';'"
