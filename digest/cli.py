"""The `digest` command: parse, call one library function, print. Heavy imports happen per command."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from digest.cli_common import MONTH, Context, SuggestingGroup, echo, pass_ctx, plural
from digest.cli_site import init, templates
from digest.cli_subscribers import subscribers
from digest.errors import DigestError

EPILOG_HELP = "Run 'digest COMMAND --help' for a command's options and examples."


@click.group(
    cls=SuggestingGroup,
    epilog=EPILOG_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DIGEST_CONFIG",
    help="Site config file. Default: ./digest.toml (or $DIGEST_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="Say more (-vv for debug output).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(package_name="digest", message="digest %(version)s")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, quiet: bool) -> None:
    """digest: a monthly link digest, as an email, feeds and a web archive.

    \b
    Write one Markdown file per link under content/, then at the end of the month:
      digest check                  every problem in content/, at once
      digest build --month 2025-02  email, feeds and archive into output/
      digest send --dry-run         what would be sent, sending nothing
      digest publish                the monthly job: check, build, publish, send
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    _setup_logging(level)
    ctx.obj = Context(config_path)


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


# -- content -----------------------------------------------------------------------------------


@cli.command()
@click.option("--month", type=MONTH, help="Also run the pre-send checks on this month's email.")
@pass_ctx
def check(obj: Context, month: date | None) -> None:
    """Report every problem in content/ at once; exit 1 if there are errors.

    \b
    With --month, also check that month's rendered email: the HTML is under
    Gmail's clipping size, declares color-scheme, has the unsubscribe link,
    every link in it is in the text part too, and no link was sent before.
    With [check] links = true, also request the month's links (dead ones
    and permanent redirects are warnings). Use it in your own CI before the
    month ends.

    \b
    Examples:
      digest check
      digest check --month 2025-02
    """
    from digest.publish import check as run_check

    report = run_check(obj.config, month)
    errors = [p for p in report.problems if not p.warning]
    warnings = [p for p in report.problems if p.warning]
    for problem in errors:
        echo(f"error: {problem}")
    for problem in warnings:
        echo(f"warning: {problem}")
    scope = f"content and the {report.month} email" if report.month else "content"
    if errors:
        echo(f"{plural(len(errors), 'error')}, {plural(len(warnings), 'warning')} in {scope}")
        raise SystemExit(1)
    echo(f"ok: {scope} is valid ({plural(len(warnings), 'warning')})")


@cli.command()
@click.argument("url", required=False)
@click.option("--title", help="The link's title, as the reader will see it. Default: read from the page.")
@click.option("--section", help="One of the sections in digest.toml. Default: the first.")
@click.option("--source", help="The publication or author.")
@click.option("--note", default="", help="Your commentary (Markdown).")
@click.option("--quote", help="A pull quote from the piece.")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for more.")
@click.option("--date", "when", help="YYYY-MM-DD or an ISO datetime. Default: now.")
@click.option("--no-fetch", is_flag=True, help="Never fetch the page (then --title is required).")
@pass_ctx
def add(
    obj: Context,
    url: str | None,
    title: str | None,
    section: str | None,
    source: str | None,
    note: str,
    quote: str | None,
    tags: tuple[str, ...],
    when: str | None,
    no_fetch: bool,
) -> None:
    """Save a link as content/YYYY/MM/<slug>.md.

    \b
    Without --title, the page is fetched (10 s at most, its first 2 MB) for
    its title (og:title, else <title>), the source (og:site_name, else the
    host) and a suggested note (og:description, as a comment in the file).
    The URL is stored in canonical form: the page's <link rel="canonical">
    or og:url when it gives one, without tracking parameters (utm_*, ...).

    \b
    Examples:
      digest add https://gwern.net/subculture --section "Articles and Blogs"
      digest add https://gwern.net/subculture --title "The Melancholy of Subculture Society" \\
          --source Gwern --section "Articles and Blogs" --note "A musing on how the internet segregates us."
      digest add --title "Phi-4 Technical Report" --date 2024-12-20   # no URL: a warning, not an error
    """
    from digest.adding import add_entry

    path, problems = add_entry(
        obj.config,
        url=url,
        title=title,
        section=section,
        source=source,
        note=note,
        quote=quote,
        tags=tags,
        when=when,
        fetch=not no_fetch,
    )
    for problem in problems:
        echo(f"warning: {problem}", err=True)
    echo(f"wrote {path}")


@cli.group()
def links() -> None:
    """Check that the entries' links still work."""


@links.command("check")
@click.option("--month", type=MONTH, help="Only this month's entries. Default: the whole archive.")
@click.option("--fix-redirects", is_flag=True, help="Rewrite the url of entries whose link moved permanently.")
@pass_ctx
def links_check(obj: Context, month: date | None, fix_redirects: bool) -> None:
    """Request every entry URL; list dead links and permanent redirects; exit 1 if a link is dead.

    \b
    HEAD first (GET when a server refuses HEAD), 2 requests at a time per
    host, with retries; temporary redirects (302, 303, 307) are followed.
    Results are kept in var/cache/links.json and reused while younger than
    [check] links_max_age_hours; each line shows its result's age.

    \b
    Examples:
      digest links check --month 2025-02
      digest links check --fix-redirects
    """
    from digest.linkcheck import check_links
    from digest.links import wayback_url

    report = check_links(obj.config, month, fix_redirects=fix_redirects)
    for finding in report.dead:
        where = f"{finding.use.path}:{finding.use.line}" if finding.use.line else str(finding.use.path)
        echo(f"dead: {where}: {finding.use.url}: {finding.result.detail} (checked {report.age(finding)})")
        echo(f"      archived copies: {wayback_url(finding.use.url)}")
    for finding in report.moved:
        where = f"{finding.use.path}:{finding.use.line}" if finding.use.line else str(finding.use.path)
        done = "rewritten" if finding.fixed else "moved"
        echo(f"{done}: {where}: {finding.use.url} -> {finding.result.moved_to} (checked {report.age(finding)})")
    total = len({f.use.url for f in report.findings})
    cached = total - report.requested
    echo(
        f"{plural(total, 'link')} in {report.scope}: {len(report.dead)} dead, {len(report.moved)} moved"
        f" ({cached} from the cache)"
    )
    if report.dead:
        raise SystemExit(1)


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["link-archive", "read-month", "notes", "quotes"]),  # importers.FORMATS
    help="The files' format; default: told from each file's text (quotes must be asked for).",
)
@pass_ctx
def import_(obj: Context, files: tuple[Path, ...], fmt: str | None) -> None:
    """Turn old monthly archives into entry files under content/.

    \b
    Understands a Jekyll "Link Archive" post (**[Title](url)** lines with
    bullet commentary; the text above the first link and below the last
    becomes the month's _issue.md), a plain-text "2024 December - What I
    Have Read" month (section headings, "Title - Source [Link]" lines, "― "
    quote attributions), a dated Markdown notes post (one note per
    top-level heading) and, with --format quotes, a collection of quotes,
    one a line ("quote — Author"), for content/quotes/. Importing the same
    file again writes nothing new.

    \b
    Examples:
      digest import _posts/2025-02-28-link-archive.md notes/2024-december.txt
      digest import --format quotes quotes.txt
    """
    from digest.importers import import_files

    report = import_files(obj.config, list(files), fmt)
    for problem in report.problems:
        echo(f"warning: {problem}", err=True)
    already = f" ({len(report.unchanged)} already there)" if report.unchanged else ""
    echo(f"imported {plural(len(report.written), 'new entry')}{already} from {plural(len(files), 'file')}")


# -- the month ---------------------------------------------------------------------------------


@cli.command()
@click.option("--month", type=MONTH, help="Default: the latest month with entries.")
@click.option("--all", "full", is_flag=True, help="Render every page again, not only what changed.")
@pass_ctx
def build(obj: Context, month: date | None, full: bool) -> None:
    """Write the email (HTML and text), the feeds and the web archive into the output folder.

    \b
    Only what changed since the last build is rendered: the month asked for, the
    months whose entries, templates or configuration changed, the index and the
    feeds; the rest is reused (var/cache/render/). --all renders everything.

    \b
    Examples:
      digest build
      digest build --month 2024-12
      digest build --all
    """
    from digest import publish

    _print_build(publish.build(obj.config, month, full=full))


def _print_build(rendered: Any) -> None:
    email = rendered.email
    size, count = len(email.html.encode()), len(rendered.issue.entries)
    cut = f" ({email.shown} in full, {count - email.shown} linked to the web page)" if email.cut else ""
    echo(
        f"built {rendered.issue.key}: {count} entr{'y' if count == 1 else 'ies'}, "
        f"email {size / 1000:.0f} KB{cut}, site and feeds written"
    )


ADAPTER = click.Choice(["outbox", "console", "smtp", "postmark", "ses", "mailgun"])


@cli.command()
@click.option("--month", type=MONTH, help="Default: the latest month with entries.")
@click.option(
    "--to", "to", multiple=True, metavar="ADDRESS", help="Send a test copy to ADDRESS only (repeatable); not logged."
)
@click.option(
    "--preview", is_flag=True, help="Send a copy to the [delivery] recipients (your own addresses) only; not logged."
)
@click.option("--dry-run", is_flag=True, help="Render and report what would be sent; send and write nothing.")
@click.option("--retry-failed", is_flag=True, help="Also retry this month's permanent failures.")
@click.option("--adapter", type=ADAPTER, help="Override [delivery] adapter.")
@click.option("--queue-only", is_flag=True, default=None, help="Only queue the deliveries; 'digest worker' sends them.")
@pass_ctx
def send(
    obj: Context,
    month: date | None,
    to: tuple[str, ...],
    preview: bool,
    dry_run: bool,
    retry_failed: bool,
    adapter: str | None,
    queue_only: bool | None,
) -> None:
    """Send the month's issue to every active subscriber who has not had it yet.

    \b
    Each delivery is recorded: run it again after a crash, Ctrl-C or a flaky
    server, and it sends only what is left. Temporary failures are retried with
    backoff; permanent ones are recorded (--retry-failed tries them again).

    \b
    Examples:
      digest send --dry-run
      digest send --month 2025-02 --to me@example.com
      digest send --preview --adapter console
      digest send --month 2025-02 --retry-failed
    """
    from digest import publish

    config = obj.config
    rendered = (
        publish.render(config, month, for_sending=True)
        if dry_run or to or preview
        else publish.build(config, month, for_sending=True)
    )
    if to or preview:
        _send_copies(config, rendered, list(to) if to else list(config.delivery.recipients), adapter)
        return
    _send_to_subscribers(
        config, rendered, adapter=adapter, retry_failed=retry_failed, dry_run=dry_run, queue_only=queue_only or None
    )


def _send_copies(config: Any, rendered: Any, addresses: list[str], adapter: str | None) -> None:
    from digest import publish

    if not addresses:
        raise DigestError("no addresses: list yours under [delivery] recipients in digest.toml, or pass --to")
    report = publish.send_copies(config, rendered, addresses, adapter=adapter)
    for address, outcome in report.results:
        echo(f"{outcome.status}: {address}" + (f" ({outcome.detail})" if outcome.detail else ""))
    if report.failed:
        raise SystemExit(1)


def _send_to_subscribers(config: Any, rendered: Any, **options: Any) -> None:
    from digest import publish
    from digest.progress import SendProgress, stop_on_signals

    if options.get("dry_run"):
        report = publish.send(config, rendered, **options)
        echo(
            f"dry run: {rendered.issue.key} ({rendered.issue.subject!r}) would go to "
            f"{report.after['would_send']} subscriber(s); "
            f"{report.already_sent} already have it; nothing sent"
        )
        return
    with stop_on_signals() as stop, SendProgress(rendered.issue.key) as progress:
        report = publish.send(
            config, rendered, stop=stop, on_progress=progress.update, on_total=progress.set_total, **options
        )
    if report.queued_only:
        echo(f"{report.issue_key}: queued for {report.queued} subscriber(s); 'digest worker' processes send them")
        return
    _print_send(report)
    if not report.ok:
        raise SystemExit(1)


def _print_send(report: Any) -> None:
    s = report.stats
    echo(
        f"{report.issue_key}: sent {s.sent}, retried {s.retried}, failed {s.failed}, "
        f"skipped {report.already_sent} already sent"
        + (f", resent {s.resent_unknown} whose outcome was unknown after a crash" if s.resent_unknown else "")
    )
    if report.stopped:
        echo(f"stopped: {report.remaining} left; run 'digest send --month {report.issue_key}' to finish")
    elif report.remaining:
        echo(f"{report.remaining} deliveries are still queued or held by another sender; 'digest status' shows them")
    if s.failed:
        echo(
            f"{s.failed} failed for good; 'digest status --month {report.issue_key}' lists them, "
            "--retry-failed tries again"
        )


@cli.command("publish")
@click.option("--month", type=MONTH, help="Default: the latest month with entries.")
@click.option("--adapter", type=ADAPTER, help="Override [delivery] adapter.")
@click.option("--queue-only", is_flag=True, default=None, help="Only queue the deliveries; 'digest worker' sends them.")
@pass_ctx
def publish_cmd(obj: Context, month: date | None, adapter: str | None, queue_only: bool | None) -> None:
    """The monthly job: check the content, build, publish the site and feeds, send.

    \b
    Example:
      digest publish --month 2025-02
    """
    from digest import publish

    rendered = publish.build(obj.config, month, for_sending=True)
    _print_build(rendered)
    _send_to_subscribers(obj.config, rendered, adapter=adapter, queue_only=queue_only or None)


@cli.command()
@click.option("--month", type=MONTH, help="One month's delivery log in detail.")
@click.option("--json", "as_json", is_flag=True, help="The same figures as one JSON document, for scripts.")
@pass_ctx
def status(obj: Context, month: date | None, as_json: bool) -> None:
    """Subscribers, each issue's deliveries, and the senders at work.

    \b
    --json prints them as one JSON document: subscribers by status; per issue
    its state, deliveries (total, sent, queued, in flight, failed, skipped),
    rate and ETA, bounces and complaints reported after it, its failures; the
    workers (a sender whose lease lapsed shows as stopped). Times are ISO 8601 UTC.

    \b
    Examples:
      digest status
      digest status --month 2025-02
      digest status --json | jq '.issues[0].deliveries'
    """
    from digest.status import gather_status, status_json, status_text

    if as_json:
        echo(status_json(gather_status(obj.config, month, failures=True)))
    else:
        echo(status_text(gather_status(obj.config, month)))


@cli.command()
@click.option("--maildir", type=click.Path(path_type=Path), help="A Maildir folder. Default: [bounces] maildir.")
@click.option("--imap", is_flag=True, help="The [imap] mailbox (password from DIGEST_IMAP_PASSWORD).")
@pass_ctx
def bounces(obj: Context, maildir: Path | None, imap: bool) -> None:
    """Read the mailbox where bounces, complaints and mailto unsubscribes arrive.

    \b
    Hard bounces mark a reader bounced after [delivery] bounce_after, soft ones after
    soft_bounce_after; a spam complaint (ARF) or a mail with the subject "unsubscribe"
    unsubscribes at once. Each message is recorded by its Message-ID, so running this
    again changes nothing; messages it does not recognise stay where they are, listed.

    \b
    Examples:
      digest bounces --maildir ~/Maildir/.bounces
      DIGEST_IMAP_PASSWORD=... digest bounces --imap
    """
    from digest.bounces import run
    from digest.store import open_store

    if maildir is not None and imap:
        raise click.UsageError("give --maildir or --imap, not both")
    store = open_store(obj.config)
    try:
        summary = run(obj.config, store, maildir=maildir, imap=imap)
    finally:
        store.close()
    names = {"hard_bounce": "hard bounce", "soft_bounce": "soft bounce", "complaint": "complaint"}
    done = [plural(n, names.get(kind, kind)) for kind, n in sorted(summary.counts.items())]
    echo(f"recorded: {', '.join(done) or 'nothing new'}; {summary.already} already recorded before")
    if summary.unrecognised:
        echo(f"{plural(len(summary.unrecognised), 'message')} not recognised, left in place:")
        for line in summary.unrecognised:
            echo(f"  {line}")


@cli.command()
@click.option("--host", help="Interface to listen on. Default: [web] host (127.0.0.1).")
@click.option("--port", type=int, help="Port. Default: [web] port (8000).")
@click.option("--no-scheduler", is_flag=True, help="Serve only; never run the monthly job from this process.")
@pass_ctx
def serve(obj: Context, host: str | None, port: int | None, no_scheduler: bool) -> None:
    """Run the web front and the monthly job in one long-running process.

    \b
    Serves the archive, the feeds, subscribe / confirm / unsubscribe, and (with
    DIGEST_ADMIN_TOKEN set) POST /admin/send. The monthly job runs per [schedule];
    several serve processes on one database elect one scheduler between them.

    \b
    Examples:
      digest serve
      DIGEST_ADMIN_TOKEN=... digest serve --host 0.0.0.0 --port 8080
    """
    import uvicorn

    from digest.schedule import SchedulerService
    from digest.web import create_app

    config = obj.config
    service = None if no_scheduler else SchedulerService(config, _config_path(obj))
    reader = _bounce_service(config)
    app = create_app(config, scheduler=service, services=reader)  # its lifespan starts and stops them
    uvicorn.run(
        app,
        host=host or config.web.host,
        port=port or config.web.port,
        log_level="info",
        # off: uvicorn would believe X-Forwarded-For from any local peer; the app reads it only
        # from [web] trusted_proxies, and builds every URL from [site] base_url
        proxy_headers=False,
        server_header=False,
    )


def _bounce_service(config: Any) -> tuple:
    """The bounce reader, when [bounces] every_minutes is set (reading [bounces] maildir, else [imap])."""
    if not config.bounces.every_minutes:
        return ()
    from digest.bounces import BounceService

    return (BounceService(config),)


def _config_path(obj: Context) -> Path:
    from digest.config import find_config

    return find_config(obj.config_path).resolve()


@cli.command()
@click.option("--month", type=MONTH, help="YYYY-MM; default: the latest month with entries.")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port on 127.0.0.1. Default: [web] port + 1 (8001); 0: any free one."
)
@pass_ctx
def preview(obj: Context, month: date | None, port: int | None) -> None:
    """Serve the month's email and site on 127.0.0.1 while you edit.

    \b
    The email (at phone and desktop widths, light and dark), its text part,
    subject and preheader, the issue page and the index, rendered again
    whenever content/, templates/ or digest.toml changes; the page reloads
    itself. A broken edit shows its error in the page. Writes no output/,
    sends nothing. Ctrl-C stops it.

    \b
    Examples:
      digest preview
      digest preview --month 2025-02 --port 0
    """
    from digest.preview import PreviewServer

    server = PreviewServer(obj.config, obj.config_path, month, port)
    shown = server.first.month or "(fix the errors shown)"
    echo(f"previewing {shown} at {server.url} (Ctrl-C stops)")
    sys.stdout.flush()
    server.run()
    echo("stopped")


@cli.command()
@click.option(
    "--count", default=3, show_default=True, type=click.IntRange(1, 1000), help="How many upcoming runs to show."
)
@pass_ctx
def schedule(obj: Context, count: int) -> None:
    """Show when the monthly job runs next (local time and UTC) and which month each publishes.

    \b
    Example:
      digest schedule --count 6
    """
    from datetime import UTC

    from digest.collect import month_of
    from digest.schedule import next_runs

    config = obj.config
    s = config.schedule
    echo(
        f"schedule: month={s.month} day={s.day} day_of_week={s.day_of_week} hour={s.hour} minute={s.minute} "
        f"second={s.second} "
        f"({config.site.timezone}), mode {s.mode}, grace {s.misfire_grace_hours:g} h"
    )
    clock = "%H:%M" if s.second == "0" else "%H:%M:%S"
    for when in next_runs(config, count):
        echo(
            f"  {when:%Y-%m-%d {clock} %Z} ({when.astimezone(UTC):%Y-%m-%d {clock}} UTC): "
            f"publishes {month_of(when, config.site.tz):%Y-%m}"
        )


@cli.command()
@click.option("--adapter", type=ADAPTER, help="Override [delivery] adapter.")
@click.option("--once", is_flag=True, help="Send what is queued now, then exit (for cron or a one-off drain).")
@pass_ctx
def worker(obj: Context, adapter: str | None, once: bool) -> None:
    """A long-running sender: claims queued deliveries of any issue and sends them.

    \b
    Run as many as you like, on any hosts that share the database (PostgreSQL for
    real parallelism; on SQLite they stay correct but take turns). A worker that
    dies leaves its claims to the others once its lease expires. Stop with Ctrl-C:
    in-flight messages finish and are recorded first.

    \b
    Examples:
      digest worker
      digest worker --once
    """
    from digest.delivery.dispatch import run_worker
    from digest.progress import stop_on_signals
    from digest.store import open_store

    store = open_store(obj.config)
    with stop_on_signals() as stop:
        stats = run_worker(obj.config, store, adapter=adapter, stop=stop, once=once)
    handled = stats.sent + stats.retried + stats.failed
    echo(
        f"worker: sent {stats.sent}, retried {stats.retried}, failed {stats.failed}"
        + (f", resent {stats.resent_unknown} whose outcome was unknown after a crash" if stats.resent_unknown else "")
        + (
            f"; {store.round_trips} database round trips ({store.round_trips / handled:.2f} per message)"
            if handled
            else ""
        )
    )


cli.add_command(init)
cli.add_command(templates)
cli.add_command(subscribers)


def main(argv: list[str] | None = None) -> None:
    """Entry point: DigestError prints as one line (exit 1), usage errors exit 2, never a traceback."""
    if argv is not None and any("\x00" in arg for arg in argv):  # (a shell can't pass one; a caller can)
        echo("Error: an argument contains a NUL character", err=True)
        sys.exit(2)
    try:
        code = cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except DigestError as exc:
        echo(f"error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        code = 130
    except BrokenPipeError:  # `digest subscribers export | head`: the reader left; nothing to say
        _silence_stdout()
        code = 1
    except OSError as exc:  # the machine, not the input: a full disk (stdout too), a read-only folder
        logging.getLogger(__name__).debug("OS error", exc_info=True)
        where = f" ({exc.filename})" if exc.filename else ""
        _try_echo(f"error: {exc.strerror or exc}{where}")
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def _silence_stdout() -> None:
    """After a broken pipe, Python's own flush at exit would fail again: point stdout at /dev/null."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):  # no real file descriptor (captured output): no flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _try_echo(message: str) -> None:
    import contextlib

    with contextlib.suppress(OSError):  # stderr on the same full disk
        echo(message, err=True)
    try:
        sys.stdout.flush()  # what was printed before the error still goes out, if it can
    except (OSError, ValueError):
        _silence_stdout()  # it can't: Python's flush at exit must not fail with a traceback


__all__ = ["main", "cli"]
