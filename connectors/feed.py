"""Order feed files (DESIGN.md 3.5): JSON lines, one Kafka message per line.

A line is either a JSON envelope object, or a JSON string holding the base64 of
a CMS message. ``read_feed`` yields the message bytes exactly as a producer
would put them on ``orders.signed``, so the replay and stream drivers see the
same input.

>>> import io, base64
>>> line_for(b"\\x30\\x03\\x02\\x01\\x01")
'"MAMCAQE="'
>>> list(iter_feed(io.StringIO('"MAMCAQE="\\n{"payload":"e30="}\\n')))
[b'0\\x03\\x02\\x01\\x01', b'{"payload":"e30="}']
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["line_for", "iter_feed", "read_feed", "write_feed", "FeedError"]


class FeedError(ValueError):
    """A feed file cannot be read; the message names the file and line."""


def line_for(message: bytes | dict) -> str:
    """One feed line for a message: a dict envelope as-is, CMS bytes as base64."""
    if isinstance(message, dict):
        return json.dumps(message, separators=(",", ":"))
    if message[:1] == b"{":
        return json.dumps(json.loads(message), separators=(",", ":"))
    return json.dumps(base64.b64encode(message).decode("ascii"))


def iter_feed(fh: IO[str], name: str = "<feed>") -> Iterator[bytes]:
    """Message bytes from an open feed; a line that is not JSON is passed through raw.

    Passing bad lines through (instead of failing) lets the verify stage reject
    them with a reason, exactly as it would on Kafka.
    """
    for line in fh:
        line = line.strip()
        if not line:
            continue
        if line.startswith('"'):
            try:
                text = json.loads(line)
                yield base64.b64decode(text, validate=True)
                continue
            except (ValueError, TypeError):
                pass
        yield line.encode("utf-8", "surrogateescape")  # the bytes as they were


def read_feed(path: str | Path) -> Iterator[bytes]:
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"feed file {path} does not exist")
    with path.open(encoding="utf-8", errors="surrogateescape") as fh:
        yield from iter_feed(fh, str(path))


def write_feed(path: str | Path, messages: Iterable[bytes | dict]) -> int:
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for message in messages:
            fh.write(line_for(message) + "\n")
            count += 1
    return count
