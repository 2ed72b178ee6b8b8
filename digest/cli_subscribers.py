"""`digest subscribers ...`: the subscriber list from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli_common import Context, SuggestingGroup, echo, pass_ctx
from digest.errors import DigestError

STATUSES = click.Choice(["pending", "active", "unsubscribed", "bounced"])


@click.group(cls=SuggestingGroup)
def subscribers() -> None:
    """Add, remove, list, import and export subscribers.

    \b
    Examples:
      digest subscribers add reader@example.com --name "A Reader"
      digest subscribers import list.csv
      digest subscribers list --status active
      digest subscribers remove reader@example.com
    """


def _store(obj: Context):
    from digest.store import open_store

    return open_store(obj.config)


@subscribers.command("add")
@click.argument("address")
@click.option("--name", help="Their name, for the To: header.")
@click.option("--pending", is_flag=True, help="Add as pending (awaiting confirmation) instead of active.")
@pass_ctx
def add(obj: Context, address: str, name: str | None, pending: bool) -> None:
    """Add one subscriber (active unless --pending). Example: digest subscribers add a@example.com"""
    from digest.store import SubscriberStatus
    from digest.store import subscribers as subs

    store = _store(obj)
    sub, created = subs.add(store, address, name, SubscriberStatus.PENDING if pending else SubscriberStatus.ACTIVE)
    if created:
        echo(f"added {sub.email} ({sub.status})")
    elif sub.status in subs.LEFT:
        raise DigestError(f"{sub.email} is {sub.status}; they were not re-added (they must subscribe again themselves)")
    else:
        echo(f"{sub.email} is already {sub.status}")


@subscribers.command("remove")
@click.argument("address")
@pass_ctx
def remove(obj: Context, address: str) -> None:
    """Unsubscribe an address. The row stays, so no later import brings them back."""
    from digest.store import subscribers as subs

    sub = subs.remove(_store(obj), address)
    if sub is None:
        raise DigestError(f"{address} is not on the list")
    echo(f"{sub.email} is {sub.status}")


@subscribers.command("list")
@click.option("--status", type=STATUSES, help="Only this status.")
@pass_ctx
def list_(obj: Context, status: str | None) -> None:
    """List subscribers (email, status, name). Example: digest subscribers list --status bounced"""
    from digest.store import SubscriberStatus
    from digest.store import subscribers as subs

    count = 0
    for sub in subs.iterate(_store(obj), SubscriberStatus(status) if status else None):
        echo(f"{sub.email}\t{sub.status}\t{sub.name or ''}")
        count += 1
    echo(f"{count} subscriber{'s' if count != 1 else ''}", err=True)


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pending", is_flag=True, help="Import as pending, to send confirmation mails later.")
@pass_ctx
def import_(obj: Context, file: Path, pending: bool) -> None:
    """Import a CSV with an 'email' column (and optionally 'name'); other columns are ignored.

    \b
    Imported addresses are active (you are moving an existing list) unless --pending.
    Bad rows are reported with their line number and the rest imported. Importing
    again changes nothing, and never re-activates someone who unsubscribed or bounced.

    \b
    Example:
      digest subscribers import subscribers.csv
    """
    from digest.store import SubscriberStatus
    from digest.store import subscribers as subs

    store = _store(obj)
    status = SubscriberStatus.PENDING if pending else SubscriberStatus.ACTIVE
    try:
        with file.open("rb") as stream:  # streamed: the file is never read whole
            result = subs.import_csv(
                store, stream, status, on_reject=lambda line, why: echo(f"{file}:{line}: skipped: {why}", err=True)
            )
    except subs.CsvError as exc:
        raise DigestError(f"{file}:{exc}") from None
    except OSError as exc:
        raise DigestError(f"{file}: can't read it: {exc.strerror or exc}") from None
    echo(f"imported {result.added} new, {result.existing} already on the list, {result.rejected} rejected")


@subscribers.command("export")
@click.option("--status", type=STATUSES, help="Only this status.")
@pass_ctx
def export(obj: Context, status: str | None) -> None:
    """Write the list as CSV to standard output. Example: digest subscribers export > list.csv"""
    from digest.store import SubscriberStatus
    from digest.store import subscribers as subs

    for line in subs.export_csv(_store(obj), SubscriberStatus(status) if status else None):
        sys.stdout.write(line)
