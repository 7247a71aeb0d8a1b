"""Agent pseudonyms: stable, keyed, and with the key kept out of the shareable report.

``pseudonym(agent_id, key) = "Agent " + base32(HMAC-SHA256(key, agent_id))[:6]``.
The key is 32 random bytes stored (hex) in ``<output_dir>/<slug>/.restricted/pseudonym.key``
with mode 0600, created on first use. Because the key is per client and kept across
quarters, an agent has the same pseudonym in every report of that client. Without the key a
pseudonym cannot be reversed or recomputed from an agent id. The agent-to-pseudonym map for
the consultant goes to ``.restricted/<period>-agents.csv``, never into the period folder.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import secrets
from pathlib import Path
from typing import Iterable

import pandas as pd

from .columns import Contact as C
from .errors import RunError

__all__ = [
    "PREFIX", "KEY_FILE", "RESTRICTED_DIR", "pseudonym", "restricted_dir", "load_or_create_key",
    "pseudonym_map", "pseudonymise", "write_mapping",
]

PREFIX = "Agent "
KEY_FILE = "pseudonym.key"
RESTRICTED_DIR = ".restricted"


def pseudonym(agent_id: str, key: bytes) -> str:
    """The stable pseudonym of one agent under ``key``.

    Examples
    --------
    >>> pseudonym("AG001", b"k" * 32)
    'Agent DCJ4QV'
    """
    if not key:
        raise ValueError("an empty pseudonym key would make pseudonyms reversible; pass the client's key")
    digest = hmac.new(key, str(agent_id).encode("utf-8"), hashlib.sha256).digest()
    return PREFIX + base64.b32encode(digest).decode("ascii")[:6]


def restricted_dir(client_dir: str | Path) -> Path:
    """``<output_dir>/<slug>/.restricted`` for the client folder ``<output_dir>/<slug>``."""
    return Path(client_dir) / RESTRICTED_DIR


def load_or_create_key(folder: str | Path) -> bytes:
    """Read the client's key from ``folder/pseudonym.key``, creating it (mode 0600) if absent.

    Creation is exclusive (``O_EXCL``), so two notebooks starting at once agree on one key.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(folder, 0o700)
    except OSError:  # e.g. a shared folder we do not own; the key file itself is still 0600
        pass
    path = folder / KEY_FILE
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise RunError(f"the pseudonym key {path} is not valid hex; restore it from a backup "
                       "(deleting it changes every agent's pseudonym)") from None
    if len(key) < 16:
        raise RunError(f"the pseudonym key {path} is too short ({len(key)} bytes); restore it from a backup")
    return key


def pseudonym_map(agent_ids: Iterable[str], key: bytes) -> dict[str, str]:
    """``{agent_id: pseudonym}`` for the distinct ids, refusing a collision (two agents, one name)."""
    ids = sorted({str(a) for a in agent_ids if a is not None and not (isinstance(a, float) and pd.isna(a))})
    mapping = {a: pseudonym(a, key) for a in ids}
    if len(set(mapping.values())) != len(mapping):
        seen: dict[str, str] = {}
        for a, p in mapping.items():
            if p in seen:
                raise RunError(f"agents {seen[p]!r} and {a!r} share the pseudonym {p!r}; "
                               "delete .restricted/pseudonym.key to draw a new key")
            seen[p] = a
    return mapping


def pseudonymise(df: pd.DataFrame, key: bytes, column: str = C.AGENT_ID) -> pd.DataFrame:
    """A copy of ``df`` with ``column`` replaced by pseudonyms (missing ids stay missing)."""
    if column not in df.columns:
        raise KeyError(f"no column {column!r} to pseudonymise; columns are {list(df.columns)}")
    out = df.copy()
    mapping = pseudonym_map(out[column].dropna().unique(), key)
    out[column] = out[column].map(lambda a: mapping.get(str(a)) if pd.notna(a) else a)
    return out


def write_mapping(agent_ids: Iterable[str], key: bytes, path: str | Path) -> Path:
    """Write the agent ↔ pseudonym table (sorted by agent id) as CSV with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([C.AGENT_ID, "pseudonym"])
    for agent, name in pseudonym_map(agent_ids, key).items():
        writer.writerow([agent, name])
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    os.replace(tmp, path)
    return path
