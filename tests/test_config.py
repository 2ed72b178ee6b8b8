"""digest.toml from a clumsy or hostile hand: strict types, no secrets, plain subject placeholders,
unreadable files; each error names the key and its line, and never prints a traceback."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from conftest import site_settings, to_toml

from digest.collect import load_archive
from digest.config import load_config
from digest.errors import ConfigError

GOOD = "---\ntitle: Fine\nurl: https://example.com/fine\ndate: 2025-02-10\n---\nGood.\n"


def with_setting(table: str, key: str, value: object) -> dict:
    settings = site_settings()
    settings.setdefault(table, {})[key] = value
    return settings


def line_of(toml: str, key: str) -> int:
    return next(n for n, text in enumerate(toml.splitlines(), 1) if text.startswith(f"{key} = "))


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("feeds", "keep", "12", "feeds.keep: Input should be a valid integer (got '12')"),
        ("smtp", "port", "587", "smtp.port: Input should be a valid integer (got '587')"),
        ("smtp", "port", 587.0, "smtp.port: Input should be a valid integer (got 587.0)"),
        ("delivery", "max_attempts", True, "delivery.max_attempts: Input should be a valid integer (got True)"),
        ("delivery", "retry_backoff", "30", "delivery.retry_backoff: Input should be a valid number (got '30')"),
        ("web", "subscribe_limit", "5", "web.subscribe_limit: Input should be a valid integer (got '5')"),
        ("site", "title", 7, "site.title: Input should be a valid string (got 7)"),
    ],
)
def test_config_types_are_strict(new_project, cli, table, key, value, message):
    project = new_project(settings=with_setting(table, key, value))
    project.write("2025/02/fine.md", GOOD)
    result = cli(project.root, "check")
    line = line_of(project.toml.read_text(), key)
    assert (result.code, result.err) == (1, f"error: digest.toml:{line}: {message}\n")


def test_toml_integers_are_fine_for_float_keys_and_lists_for_arrays(new_project):
    settings = with_setting("delivery", "retry_backoff", 30)
    settings["smtp"] = {"timeout": 5, "rate": 2}
    settings["web"] = {"subscribe_window_minutes": 10, "trusted_proxies": ["10.0.0.0/8", "::1"]}
    config = new_project(settings=settings).config()
    assert (config.delivery.retry_backoff, config.smtp.timeout, config.web.subscribe_window_minutes) == (30, 5, 10)
    assert config.web.trusted_proxies == ("10.0.0.0/8", "::1")
    assert config.site.sections[0] == "Articles and Blogs"


def test_trusted_proxies_must_be_addresses_or_networks(new_project, cli):
    project = new_project(settings=with_setting("web", "trusted_proxies", ["10.0.0.0/8", "proxy.local"]))
    result = cli(project.root, "check")
    line = line_of(project.toml.read_text(), "trusted_proxies")
    assert result.code == 1
    assert f"digest.toml:{line}: web.trusted_proxies: 'proxy.local' is not an IP address or CIDR network" in result.err


def test_a_password_in_the_store_url_is_refused_and_never_repeated(new_project, cli):
    project = new_project(settings=with_setting("store", "url", "postgresql://digest:hunter2@db.example/digest"))
    result = cli(project.root, "check")
    line = line_of(project.toml.read_text(), "url")
    assert result.code == 1
    assert result.err.startswith(f"error: digest.toml:{line}: store.url: a password doesn't belong in digest.toml")
    assert "DIGEST_DATABASE_URL" in result.err
    assert "hunter2" not in result.out + result.err
    assert "Traceback" not in result.err


def test_a_store_url_without_a_password_is_fine(new_project):
    config = new_project(settings=with_setting("store", "url", "postgresql://digest@db.example/digest")).config()
    assert config.store.url == "postgresql://digest@db.example/digest"


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("{title:>20000000}", "placeholder {title:>20000000} has a format or conversion; write it plainly as {title}"),
        ("{title!r}", "placeholder {title!r} has a format or conversion; write it plainly as {title}"),
        ("{year:,}", "placeholder {year:,} has a format or conversion; write it plainly as {year}"),
        ("{title.upper}", "unknown placeholder {title.upper}; use count, key, month, month_name, title, year"),
        ("{title[0]}", "unknown placeholder {title[0]}; use count, key, month, month_name, title, year"),
        ("{title.__class__}", "unknown placeholder {title.__class__}; use count, key, month, month_name, title, year"),
        ("{}", "unknown placeholder {}; use count, key, month, month_name, title, year"),
        ("{0}", "unknown placeholder {0}; use count, key, month, month_name, title, year"),
        ("{title", "expected '}' before end of string; write a literal brace as {{ or }}"),
        ("title}", "Single '}' encountered in format string; write a literal brace as {{ or }}"),
    ],
)
def test_the_subject_takes_only_plain_placeholders(new_project, cli, subject, message):
    project = new_project(settings=with_setting("email", "subject", subject))
    project.write("2025/02/fine.md", GOOD)
    toml = project.toml.read_text()
    for command in ("check", "build"):
        result = cli(project.root, command)
        assert result.code == 1, result.out
        assert result.err.startswith(f"error: digest.toml:{line_of(toml, 'subject')}: email.subject: {message}")
    assert project.written() == []


def test_literal_braces_in_the_subject(new_project):
    project = new_project(settings=with_setting("email", "subject", "{{{title}}} {{#{count}}}"))
    project.write("2025/02/fine.md", GOOD)
    assert load_archive(project.config()).issue(date(2025, 2, 1)).subject == "{Link Archive} {#1}"


def test_a_long_subject_is_cut_at_a_word_with_a_warning(new_project, caplog):
    settings = site_settings()
    settings["site"]["title"] = "word " * 100
    project = new_project(settings=settings)
    project.write("2025/02/fine.md", GOOD)
    with caplog.at_level(logging.WARNING):
        subject = load_archive(project.config()).issue(date(2025, 2, 1)).subject
    assert len(subject) <= 200 and subject.endswith("word…")
    assert "the email subject is" in caplog.text and "cut to 200" in caplog.text


def test_a_config_that_is_not_utf8_names_the_file(new_project, cli):
    project = new_project()
    project.toml.write_bytes(project.toml.read_bytes().replace(b"Link Archive", b"Link Archiv\xe9", 1))
    result = cli(project.root, "check")
    assert result.code == 1
    assert (
        result.err == "error: digest.toml:2: not UTF-8 text (invalid continuation byte at byte 27) (save it as UTF-8)\n"
    )


def test_an_unreadable_config_names_the_file(new_project, cli, tmp_path):
    import os

    project = new_project()
    project.toml.chmod(0)
    try:
        if os.access(project.toml, os.R_OK):
            pytest.skip("running as root: every file is readable")
        result = cli(project.root, "check")
    finally:
        project.toml.chmod(0o644)
    assert (result.code, result.err) == (1, "error: digest.toml: can't read the config file: Permission denied\n")


def test_a_config_path_too_long_for_the_file_system_is_not_found(cli, tmp_path):
    result = cli(tmp_path, "--config", "x" * 5000, "check")
    assert result.code == 1 and "config file not found" in result.err and "Traceback" not in result.err


def test_load_config_raises_config_errors_only(tmp_path):
    path = tmp_path / "digest.toml"
    path.write_bytes(b"\xff\xfe" + to_toml(site_settings()).encode("utf-16-le"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


# -- the tables' rules (digest/settings.py), straight through make_config ---------------------------------------


def table_mistakes(tmp_path, **tables) -> list[str]:
    from digest.config import make_config
    from digest.settings import Invalid

    settings = site_settings()
    for name, values in tables.items():
        if values is None:
            settings.pop(name, None)
        elif isinstance(values, dict):
            settings.setdefault(name, {}).update(values)
        else:
            settings[name] = values
    try:
        make_config(settings, tmp_path)
    except Invalid as exc:
        return [f"{'.'.join(map(str, m.loc))}: {m}" for m in exc.mistakes]
    return []


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        ({"smtp": {"port": 0}}, ["smtp.port: Input should be greater than or equal to 1 (got 0)"]),
        ({"smtp": {"port": 70000}}, ["smtp.port: Input should be less than or equal to 65535 (got 70000)"]),
        ({"smtp": {"timeout": 0}}, ["smtp.timeout: Input should be greater than 0 (got 0)"]),
        ({"smtp": {"security": "ssl"}}, ["smtp.security: Input should be 'none', 'starttls' or 'tls' (got 'ssl')"]),
        ({"email": {"overflow": "cut"}}, ["email.overflow: Input should be 'link' or 'refuse' (got 'cut')"]),
        ({"site": {"sections": []}}, ["site.sections: should have at least 1 item (got [])"]),
        ({"site": {"sections": ["News", 3]}}, ["site.sections.1: Input should be a valid string (got 3)"]),
        ({"site": {"sections": "News"}}, ["site.sections: Input should be a valid array (got 'News')"]),
        ({"site": {"title": "  "}}, ["site.title: must not be empty (got '  ')"]),
        ({"site": {"notes_section": "news"}}, ["site: notes_section 'news' is also one of sections: give notes their own name"]),
        ({"delivery": {"recipients": ["ok@example.com", "nope"]}}, ["delivery.recipients.1: 'nope' is not a valid email address: An email address must have an @-sign. (got 'nope')"]),
        ({"feeds": "twelve"}, ["feeds: should be a table of keys (got 'twelve')"]),
        ({"sender": None}, ["sender: required key is missing"]),
        ({"paths": {"content": 3}}, ["paths.content: Input is not a valid path (got 3)"]),
        ({"bounces": {"every_minutes": 5}}, [": [bounces] every_minutes needs a mailbox: set [bounces] maildir or an [imap] table"]),
        ({"schedule": {"hour": 7, "day_of_week": "mon-fri"}}, []),  # a whole number is fine for a cron field
        ({"schedule": {"hour": True}}, ["schedule.hour: Input should be a valid string (got True)"]),
        ({"schedule": {"hour": "25"}}, ["schedule.hour: not a valid schedule: Error validating expression '25': the last value (25) is higher than the maximum value (23) (got '25')"]),
        ({"smtp": {"port": 1, "bogus": 2, "timeout": "x"}}, ["smtp.timeout: Input should be a valid number (got 'x')", "smtp.bogus: unknown key (check the spelling; see the README for the keys this table takes)"]),
    ],
)  # fmt: skip
def test_each_rule_names_its_key_and_says_what_is_wrong(tmp_path, tables, expected):
    assert table_mistakes(tmp_path, **tables) == expected


def test_a_valid_config_keeps_what_the_checks_made_of_it(tmp_path):
    from digest.config import make_config

    settings = site_settings()
    settings["site"]["base_url"] = "https://links.example.com"
    settings["schedule"] = {"hour": 7}
    settings["sender"]["address"] = "Digest@Links.Example.COM"
    settings["delivery"]["retry_backoff"] = 30
    config = make_config(settings, tmp_path)
    assert config.site.base_url == "https://links.example.com/"  # the slash the links need
    assert config.schedule.hour == "7" and config.delivery.retry_backoff == 30.0
    assert isinstance(config.delivery.retry_backoff, float)
    assert config.sender.address == "digest@links.example.com"
    assert config.paths.content == tmp_path / "content" and config.var_dir == tmp_path / "var"
    assert config == make_config(settings, tmp_path) and hash(config) == hash(make_config(settings, tmp_path))


def test_reading_the_config_imports_no_validation_framework():
    import subprocess
    import sys

    code = "import sys; import digest.config; print(sorted(m for m in ('pydantic', 'email_validator') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
