"""`carebot kb …`: the FAQ knowledge base from the command line (import/export, publish, history, search).

bot/cli.py mounts it with `app.add_typer(kb_app, name="kb")`. Errors are KbError (and DatabaseError,
SettingsError), which the CLI prints as one `error: …` line.

Stored text is printed through knowledge_base.characters, so a control or invisible character that reached the
database before the editor refused them is shown as a marker (⟦U+001B⟧), or escaped in JSON, never raw.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.kb import KnowledgeBase, kb_config, make_embedder, open_knowledge_base
from bot.settings import Settings
from knowledge_base.characters import json_text, shown
from knowledge_base.io import read_file, write_file
from knowledge_base.service import Entry, EntryVersion

kb_app = typer.Typer(help="The FAQ knowledge base: import, publish, history, search.", no_args_is_help=True)
console = Console(stderr=True)

AuthorOption = Annotated[str | None, typer.Option(help="Who makes the change (default: your user name).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _settings() -> Settings:
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs

    return STATE.settings


def _author(author: str | None) -> str:
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@contextmanager
def _kb() -> Iterator[KnowledgeBase]:
    with open_knowledge_base(_settings()) as kb:
        yield kb


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
        if progress.tasks[0].total is None:  # nothing to do: show it as done
            progress.update(task, total=0, completed=0)


def _entry_dict(entry: Entry) -> dict[str, Any]:
    c = entry.content
    return {
        "id": entry.id, "slug": c.slug, "status": entry.status, "version": entry.version,
        "published_version": entry.published_version, "has_unpublished_changes": entry.has_unpublished_changes,
        "question": c.question, "paraphrases": list(c.paraphrases), "answer": c.answer, "tags": list(c.tags),
        "language": c.language, "author": entry.author, "updated_at": entry.updated_at.isoformat(),
    }  # fmt: skip


def _version_dict(version: EntryVersion) -> dict[str, Any]:
    c = version.content
    return {
        "version": version.version, "note": version.note, "author": version.author,
        "created_at": version.created_at.isoformat(), "question": c.question, "paraphrases": list(c.paraphrases),
        "answer": c.answer, "tags": list(c.tags), "language": c.language,
    }  # fmt: skip


def _echo_json(data: Any) -> None:
    typer.echo(json_text(data, indent=2))


def _state(entry: Entry) -> str:
    if entry.status != "published":
        return entry.status
    pending = ", unpublished changes" if entry.has_unpublished_changes else ""
    return f"published v{entry.published_version}{pending}"


@kb_app.command("import")
def kb_import(
    file: Annotated[Path, typer.Argument(help="A .yml/.yaml or .csv file of FAQ entries.")],
    author: AuthorOption = None,
) -> None:
    """Import entries (create or update by slug) in one transaction; a bad file changes nothing."""
    records = read_file(file)
    with _kb() as kb:
        with _progress(f"Embedding {len(records)} entries") as update:
            report = kb.service.import_entries(records, author=_author(author), source=str(file), on_progress=update)
        if report.kb_version is not None:
            kb.searcher.save()  # catches up first; later processes start from this file
    console.print(
        f"Imported {file}: {report.created} created, {report.updated} updated, {report.published} published, "
        f"{report.unpublished} unpublished, {report.unchanged} unchanged.",
        highlight=False, markup=False, soft_wrap=True,
    )  # fmt: skip


@kb_app.command("export")
def kb_export(file: Annotated[Path, typer.Argument(help="Where to write: .yml/.yaml or .csv.")]) -> None:
    """Export every entry's working copy and status; importing the file again restores them."""
    with _kb() as kb:
        records = kb.service.export_entries()
    write_file(file, records)
    console.print(f"Exported {len(records)} entries to {file}.", highlight=False, markup=False, soft_wrap=True)


@kb_app.command("list")
def kb_list(
    status: Annotated[str | None, typer.Option(help="Only entries with this status.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only entries with this tag.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the entries."""
    with _kb() as kb:
        found = kb.service.list_entries(status=status, tag=tag)
    if as_json:
        _echo_json([_entry_dict(e) for e in found])
        return
    width = max((len(shown(e.slug)) for e in found), default=4)
    for entry in found:
        typer.echo(f"{shown(entry.slug):<{width}}  {_state(entry):<36}  {shown(entry.content.question)}")


@kb_app.command("show")
def kb_show(
    slug: str,
    version: Annotated[int | None, typer.Option(help="A published version instead of the working copy.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show an entry's working copy, or one of its versions."""
    with _kb() as kb:
        if version is not None:
            found = kb.service.get_version(slug, version)
            data, content = _version_dict(found), found.content
            title = f"{slug} version {version} ({shown(found.note)}, {shown(found.author)})"
        else:
            entry = kb.service.get(slug)
            data, content, title = _entry_dict(entry), entry.content, f"{slug} ({_state(entry)})"
    if as_json:
        _echo_json(data)
        return
    typer.echo(shown(title))
    typer.echo(f"  question: {shown(content.question)}")
    for paraphrase in content.paraphrases:
        typer.echo(f"    - {shown(paraphrase)}")
    typer.echo(f"  answer:   {shown(content.answer, multiline=True)}")
    typer.echo(f"  tags:     {shown(', '.join(content.tags))}   language: {shown(content.language)}")


@kb_app.command("publish")
def kb_publish(slug: str, author: AuthorOption = None) -> None:
    """Make an entry's working copy live as its next version."""
    with _kb() as kb:
        entry = kb.service.publish(slug, author=_author(author))
    console.print(f"Published {slug} version {entry.version}.", highlight=False, markup=False, soft_wrap=True)


@kb_app.command("unpublish")
def kb_unpublish(slug: str, author: AuthorOption = None) -> None:
    """Take an entry out of search (it is archived, with its history)."""
    with _kb() as kb:
        kb.service.unpublish(slug, author=_author(author))
    console.print(f"Unpublished {slug}.", highlight=False, markup=False, soft_wrap=True)


@kb_app.command("rollback")
def kb_rollback(slug: str, version: int, author: AuthorOption = None) -> None:
    """Publish an old version's content again, as the next version."""
    with _kb() as kb:
        entry = kb.service.rollback(slug, version, author=_author(author))
    console.print(
        f"Rolled {slug} back to the content of version {version}, published as version {entry.version}.",
        highlight=False, markup=False, soft_wrap=True,
    )  # fmt: skip


@kb_app.command("history")
def kb_history(slug: str, as_json: JsonOption = False) -> None:
    """The published versions of an entry."""
    with _kb() as kb:
        versions = kb.service.history(slug)
        entry = kb.service.get(slug)
    if as_json:
        _echo_json([_version_dict(v) for v in versions])
        return
    for version in versions:
        live = "  (live)" if version.version == entry.published_version else ""
        when = f"{version.created_at:%Y-%m-%d %H:%M}"
        typer.echo(f"v{version.version}  {when}  {shown(version.author)}  {shown(version.note)}{live}")
    if not versions:
        typer.echo(f"{slug} has never been published.")


@kb_app.command("diff")
def kb_diff(
    slug: str,
    old: Annotated[int, typer.Argument(help="A version number.")],
    new: Annotated[int | None, typer.Argument(help="A later version (default: the working copy).")] = None,
) -> None:
    """A unified diff between two versions of an entry."""
    with _kb() as kb:
        text = kb.service.diff(slug, old, new)
    typer.echo(shown(text, multiline=True) or "(no differences)")


@kb_app.command("search")
def kb_search(
    text: str,
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=50, help="How many entries.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """The published entries nearest to a text, with scores and the margin between the first two."""
    with _kb() as kb:
        result = kb.searcher.search(text, k)
    if as_json:
        typer.echo(json_text({"text": text, **result.to_dict()}))
        return
    for hit in result.hits:
        typer.echo(f"{hit.score:.3f}  {shown(hit.slug):<28}  {shown(hit.text)}")
    typer.echo(f"margin {result.margin:.3f}  (KB version {result.kb_version})")


@kb_app.command("reindex")
def kb_reindex(author: AuthorOption = None) -> None:
    """Embed every live text again with the configured model (after changing the model)."""
    with _kb() as kb:
        with _progress("Embedding") as update:
            count = kb.service.reindex(author=_author(author), on_progress=update)
        kb.searcher.save()
    console.print(f"Re-indexed {count} texts.", highlight=False, markup=False, soft_wrap=True)


@kb_app.command("clinc-eval")
def kb_clinc_eval(
    data: Annotated[Path, typer.Option(help="CLINC150's data_full.json.")],
    as_json: JsonOption = False,
    target_precision: Annotated[float, typer.Option(min=0.5, max=1.0, help="Answer precision to aim for.")] = 0.95,
) -> None:
    """Load CLINC150 as an FAQ (one entry per intent) and report accuracy and out-of-scope AUROC."""
    from knowledge_base.evaluation import evaluate_clinc

    embedder = make_embedder(kb_config(_settings()))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = evaluate_clinc(data, embedder, target_precision=target_precision, on_progress=update)
    if as_json:
        _echo_json(report)
        return
    test, point = report["test"], report["threshold"]
    typer.echo(f"{report['entries']} entries, {report['vectors']} vectors ({report['model']})")
    typer.echo(f"test top-1 accuracy {test['top1_accuracy']:.3f} on {test['examples']} in-scope examples")
    typer.echo(
        f"out-of-scope AUROC: top score {test['oos_auroc_top_score']:.3f}, margin {test['oos_auroc_margin']:.3f}"
    )
    on_test = point["test"]
    typer.echo(
        f"threshold {point['top_score_threshold']:.3f} (chosen on val for answer precision "
        f"{point['target_answer_precision']}): on test it answers {on_test['answered_in_scope']:.1%} of in-scope "
        f"messages at precision {on_test['answer_precision']} and escalates "
        f"{on_test['out_of_scope_escalated']:.1%} of out-of-scope ones"
    )
