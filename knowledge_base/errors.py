"""The knowledge base's errors. Every one is a user error with a clear one-line message:

    KbError
     ├── EntryNotFound          no entry with that slug
     ├── VersionNotFound        the entry has no such version
     ├── InvalidTransition      e.g. unpublishing an entry that is not published
     ├── KbValidationError      an entry breaks the rules (.problems lists them all)
     ├── KbImportError          a file cannot be imported (.problems, each with its line number)
     ├── EmbedderUnavailable    the embedding model cannot be loaded
     └── IndexMismatch          stored vectors were made by another model: re-index
"""

from __future__ import annotations


class KbError(Exception):
    """The knowledge base refused the request."""


class EntryNotFound(KbError):
    """No FAQ entry has that slug."""


class VersionNotFound(KbError):
    """The FAQ entry has no such version."""


class InvalidTransition(KbError):
    """The FAQ entry is not in a state that allows this."""


class EmbedderUnavailable(KbError):
    """The embedding model cannot be loaded."""


class IndexMismatch(KbError):
    """The stored vectors were made by another embedding model; run `carebot kb reindex`."""


class _ProblemsError(KbError):
    def __init__(self, subject: str, problems: list[str]) -> None:
        self.subject = subject
        self.problems = list(problems)
        shown = "; ".join(self.problems[:20])
        more = f"; and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{subject}: {shown}{more}")


class KbValidationError(_ProblemsError):
    """An FAQ entry breaks the rules; `problems` lists every rule it breaks."""


class KbImportError(_ProblemsError):
    """A file cannot be imported; `problems` lists every problem with its line number. Nothing was imported."""
