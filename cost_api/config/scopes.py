"""`scoped_keys:` — API keys that see one part of the log: the spend of some tag values (`team:search`),
of some endpoints, or of some tokens (docs/security.md#scoped-keys). Checked at start-up: a bad entry
stops the start naming it (`scoped_keys[1].tags[0]: …`)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

import msgspec

from cost_api.config.tags import TAG_KEY, UNTAGGED

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ScopedKey(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    key: Annotated[str | None, msgspec.Meta(description="The key, in clear.")] = None
    key_hash: Annotated[str | None, msgspec.Meta(description="Or its SHA-256 hex digest, as in `api_key_hashes`.")] = (
        None
    )
    name: Annotated[str | None, msgspec.Meta(description="Who holds it: a note for the reader of the file.")] = None
    tags: Annotated[
        list[str], msgspec.Meta(description="`key:value` tags (values of one key OR, keys AND), e.g. `team:search`.")
    ] = msgspec.field(default_factory=list)
    endpoints: Annotated[list[str], msgspec.Meta(description="Endpoints, as logged.")] = msgspec.field(
        default_factory=list
    )
    tokens: Annotated[list[str], msgspec.Meta(description="Token ids (`api_tokens.id`).")] = msgspec.field(
        default_factory=list
    )

    @property
    def tag_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((key, value) for key, _, value in (tag.partition(":") for tag in self.tags))


def key_digest(key: str) -> str:
    """A key's SHA-256 hex digest: the form `api_key_hashes` and `key_hash` take."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_scoped_keys(entries: list[ScopedKey], api_keys: list[str], api_key_hashes: list[str]) -> str | None:
    """The first problem of the entries, naming it (None: all sound). A key may appear once in all:
    a key both unscoped and scoped would see everything through one of them."""
    seen = {*api_key_hashes, *(key_digest(key) for key in api_keys)}
    for i, entry in enumerate(entries):
        where = f"scoped_keys[{i}]"
        if (entry.key is None) == (entry.key_hash is None):
            return f"{where}: give exactly one of key or key_hash"
        if entry.key is not None and not entry.key.strip():
            return f"{where}.key: a blank API key"
        if entry.key_hash is not None and not _HEX64.match(entry.key_hash):
            return f"{where}.key_hash: expected 64 lowercase hex digits (SHA-256), got {entry.key_hash!r}"
        if not (entry.tags or entry.endpoints or entry.tokens):
            return f"{where}: give a scope: tags, endpoints or tokens (a key that sees everything goes in api_keys)"
        for j, tag in enumerate(entry.tags):
            key, sep, value = tag.partition(":")
            if not sep or not TAG_KEY.match(key) or not value.strip() or value == UNTAGGED:
                return f"{where}.tags[{j}]: expected key:value (e.g. team:search), got {tag!r}"
        for field in ("endpoints", "tokens"):
            for j, value in enumerate(getattr(entry, field)):
                if not value.strip():
                    return f"{where}.{field}[{j}]: blank"
        digest = entry.key_hash or key_digest(entry.key or "")
        if digest in seen:
            return f"{where}: this key is already configured (api_keys, api_key_hashes or another scoped_keys entry)"
        seen.add(digest)
    return None
