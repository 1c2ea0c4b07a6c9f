"""The ``X-Data-Subject`` header: whose personal data a registry's answer discloses.

A registry names the natural person(s) an answer is about with register-local opaque
identifiers (pseudonyms), so the provider's node can record *whose* data an exchange
disclosed without its log index holding a name. The node records them for the citizen's
data tracker and strips the header: the pseudonym is the register's business and the
consumer never sees it (docs/data-tracker.md).

Format: one or more identifiers separated by commas (optional spaces around them), in
one or several header fields (RFC 9110 list semantics: fields are joined with commas).
An identifier is 1 to :data:`MAX_SUBJECT_LENGTH` characters of ``A-Z a-z 0-9 . _ : -``;
at most :data:`MAX_SUBJECTS` distinct identifiers per answer. Duplicates collapse, order
of first appearance is kept. Anything else is refused as a whole: a node that guessed
at a malformed value could record the wrong person, or none, and the read would vanish
from the tracker.

Pure logic: no web, database or network code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

DATA_SUBJECT_HEADER: Final = "X-Data-Subject"
MAX_SUBJECT_LENGTH: Final = 128
MAX_SUBJECTS: Final = 100
_SUBJECT: Final = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_SUBJECT_LENGTH}}}")
_HEADER_NAME: Final = DATA_SUBJECT_HEADER.lower()


class DataSubjectError(ValueError):
    """A data subject value that does not follow the format; the message says why."""


def check_subject(value: str) -> str:
    """One identifier, returned unchanged if valid (also used for tracker queries)."""
    if not _SUBJECT.fullmatch(value):
        raise DataSubjectError(
            f"a data subject identifier is 1 to {MAX_SUBJECT_LENGTH} characters of "
            "A-Z a-z 0-9 . _ : -"
        )
    return value


def parse_data_subjects(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct identifiers named by the header field values ``values``.

    No values (header absent) gives ``()``. A present but empty header is refused: it
    says a person was disclosed without saying who.
    """
    if not values:
        return ()
    subjects: dict[str, None] = {}
    for value in values:
        for item in value.split(","):
            subjects[check_subject(item.strip(" \t"))] = None
            if len(subjects) > MAX_SUBJECTS:
                raise DataSubjectError(f"more than {MAX_SUBJECTS} data subjects in one answer")
    return tuple(subjects)


def split_data_subjects(
    headers: Iterable[tuple[str, str]],
) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
    """Headers without ``X-Data-Subject``, and the subjects it named.

    Raises :class:`DataSubjectError` if the header is present but malformed.
    """
    kept: list[tuple[str, str]] = []
    values: list[str] = []
    for name, value in headers:
        if name.lower() == _HEADER_NAME:
            values.append(value)
        else:
            kept.append((name, value))
    return kept, parse_data_subjects(values)
