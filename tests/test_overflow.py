"""Never clipped: every message's final HTML, with the longest personalised unsubscribe link, stays under
`[email] max_html_bytes`; a month that doesn't fit is cut with a visible link to the web page
(`overflow = "link"`) or refused before anything is sent (`"refuse"`). Feeds and the page are never cut."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

import feedparser
import lxml.html
import pytest
from conftest import site_settings

from digest import tokens
from digest.collect import load_archive
from digest.delivery.message import Composer
from digest.delivery.preflight import sample_recipient
from digest.render.email import render_email
from digest.render.feed import render_feeds
from digest.render.site import render_article

DECEMBER = __import__("datetime").date(2024, 12, 1)
LIMIT = 100_000


def longest_message_html(config, email) -> bytes:
    """The HTML part of the message with the longest possible unsubscribe link, decoded from the wire."""
    recipient = sample_recipient(config, email.key)
    assert len(recipient.unsubscribe_url) == tokens.longest_unsubscribe_url(config)
    raw = Composer(email, config).compose(recipient).raw
    [_, html] = message_from_bytes(raw, policy=policy.default).iter_parts()
    return html.get_content().encode("utf-8")


def december(new_project, **email):
    settings = site_settings("America/New_York")
    if email:
        settings["email"] = email
    project = new_project(settings=settings)
    project.copy_shipped("2024/12")
    config = project.config()
    return project, config, load_archive(config).issue(DECEMBER)


def test_december_is_cut_under_the_limit_in_section_order_with_the_rest_linked(new_project):
    _, config, issue = december(new_project)
    email = render_email(issue, config)
    assert email.full_bytes > LIMIT and email.cut and 0 < email.shown < email.total == 76
    html = longest_message_html(config, email)
    assert len(html) < LIMIT
    shown, rest = issue.entries[: email.shown], issue.entries[email.shown :]
    document = lxml.html.fromstring(html)
    in_full = [" ".join(p.text_content().split()) for p in document.xpath('//p[contains(@class, "entry-title")]')]
    assert in_full == [" ".join(e.title.split()) for e in shown]  # in full, in section order
    heading = document.xpath('//h2[contains(., "more on the web")]')
    assert [h.text_content() for h in heading] == [f"{len(rest)} more on the web"]
    listed = [" ".join(li.text_content().split()) for li in document.xpath('//ul[contains(@class, "more-list")]/li')]
    assert listed == [" ".join(e.title.split()) for e in rest]  # every remaining title, linked where it has a URL
    links = {a.get("href") for a in document.xpath('//ul[contains(@class, "more-list")]//a')}
    assert links == {e.url for e in rest if e.url}
    assert issue.permalink in {a.get("href") for a in heading[0].getparent().xpath(".//a")}
    assert f"{len(rest)} MORE ON THE WEB" in email.text and issue.permalink in email.text
    assert email.text.index(rest[0].title[:30]) > email.text.index("MORE ON THE WEB")  # the text part cuts alike
    footer = document.xpath('//a[text()="Unsubscribe"]')
    assert [a.get("href") for a in footer] == [sample_recipient(config, email.key).unsubscribe_url]  # never cut


def test_the_page_and_feeds_are_never_cut(new_project):
    _, config, issue = december(new_project)
    article = render_article(issue, config)
    assert article.count('<article class="entry">') == 76
    feeds = render_feeds([issue], {issue.key: article}, config)
    for xml in (feeds.rss, feeds.atom):
        [item] = feedparser.parse(xml, sanitize_html=False).entries
        assert item.content[0].value.count('<article class="entry">') == 76
    assert feeds.json.decode().count('<article class=\\"entry\\">') == 76


def test_refuse_keeps_the_email_whole_and_check_send_and_publish_stop_with_exit_1(new_project, cli):
    project, config, issue = december(new_project, overflow="refuse")
    email = render_email(issue, config)
    assert not email.cut and email.full_bytes > LIMIT and 0 < email.fits < 76
    assert cli(project.root, "subscribers", "add", "reader@example.com").code == 0
    for command in (["check", "--month", "2024-12"], ["send", "--month", "2024-12"], ["publish", "--month", "2024-12"]):
        result = cli(project.root, *command)
        assert result.code == 1, (command, result.output)
        over = re.search(
            r"the HTML is ([\d,]+) bytes, ([\d,]+) over \[email\] max_html_bytes \(100,000\)", result.output
        )
        assert over and int(over[2].replace(",", "")) > 0, result.output
        assert re.search(r"(\d+) of 76 entries fit", result.output)
    assert not (project.root / "outbox").exists()  # nothing was sent
    assert not (project.root / "output" / "site").exists()  # publish wrote nothing either


def test_a_month_of_300_entries_fits(new_project):
    project = new_project()
    for n in range(300):
        project.entry(
            f"link-{n:03d}",
            title=f"Entry {n}: a reasonably long title about something worth reading — part {n}",
            date=f"2025-02-{1 + n % 27:02d}",
            source="Some Publication",
            body=f"Commentary for entry {n}. " * 6 + "\n\n- a point\n- another point",
        )
    config = project.config()
    issue = load_archive(config).issue(__import__("datetime").date(2025, 2, 1))
    email = render_email(issue, config)
    assert email.cut and email.total == 300
    assert len(longest_message_html(config, email)) < LIMIT
    assert "more on the web" in email.html


def test_a_month_that_fits_is_not_cut(new_project):
    project = new_project("America/New_York")
    project.copy_shipped("2025/02")
    config = project.config()
    issue = load_archive(config).issue(__import__("datetime").date(2025, 2, 1))
    email = render_email(issue, config)
    assert not email.cut and email.shown == email.total == 8 and "more on the web" not in email.html
    assert len(longest_message_html(config, email)) < LIMIT


@pytest.mark.parametrize("limit", [20_000, 40_000])
def test_smaller_limits_still_hold_on_the_final_message(new_project, limit):
    _, config, issue = december(new_project, max_html_bytes=limit)
    email = render_email(issue, config)
    assert len(longest_message_html(config, email)) <= limit


URL_ALONE = re.compile(r"[ >]*(?:\[\d+\] )?(?:https?://|mailto:)\S+|[ >]*%%UNSUBSCRIBE_URL_[0-9a-f]{32}%%")


def test_the_text_part_wraps_at_76_columns_and_signs_off_with_the_standard_delimiter(new_project):
    _, config, issue = december(new_project, max_html_bytes=10_000_000)  # every entry, every long title
    text = render_email(issue, config).text
    long = [line for line in text.split("\n") if len(line) > 76 and not URL_ALONE.fullmatch(line)]
    assert long == []
    assert "\n-- \n" in text and text.count("\n-- \n") == 1
    assert re.search(r"\n  > I think the biggest competitive advantage.*\n  >\n  > Most highly successful", text, re.S)


@pytest.mark.parametrize("limit", [20_000, 30_000, 46_000, 53_000])
def test_the_cut_shows_the_most_entries_that_fit_for_entries_of_any_length(new_project, limit):
    """The search guesses from the sizes it has seen; its answer must still be the largest number of entries
    that fits, which a render of every count finds, for a month whose entries are far from one length."""
    from digest.render import email as email_module

    settings = site_settings()
    settings["email"] = {"max_html_bytes": limit}
    project = new_project(settings=settings)
    lengths = [1, 40, 2, 2, 90, 3, 1, 1, 60, 5, 1, 25, 2, 2, 2, 120, 1, 8, 3, 1, 1, 45, 1, 2, 70, 1, 1, 1, 15, 4]
    for n, sentences in enumerate(lengths):
        project.entry(
            f"link-{n:02d}",
            title=f"Entry {n} — «Ünïcode» 读书 {'long ' * (n % 7)}",
            date=f"2025-02-{1 + n % 27:02d}",
            section=["Articles and Blogs", "Papers and Reports", "News"][n % 3],
            body=f"Commentary on entry {n}, with a few words about it. " * sentences,
        )
    config = project.config()
    issue = load_archive(config).issue(__import__("datetime").date(2025, 2, 1))
    email = render_email(issue, config)
    slot = email_module.new_slot()

    def size(shown: int) -> int:
        return email_module.final_html_bytes(email_module._render_html(issue, config, slot, shown), slot, config)

    every = [size(shown) for shown in range(len(lengths) + 1)]
    assert every[-1] == email.full_bytes > limit
    most = max(shown for shown, bytes_ in enumerate(every) if bytes_ <= limit)
    assert email.shown == email.fits == most
    assert len(longest_message_html(config, email)) <= limit
