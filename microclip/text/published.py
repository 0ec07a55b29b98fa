"""Published description sets: fetch at run time, verify, rename keys to the suite's classes.

``descriptions/sources.yaml`` lists the repositories (base URL, pinned commit, folder) and,
per description set and dataset, the file, its sha256 and how its keys become the suite's
class names. The project holds no copy of these files: ``fetch_published`` downloads the
file from the pinned commit (or a mirror given as ``base_urls``), refuses it when its
sha256 differs from the pinned one, and maps its keys:

1. keys in ``drop`` are removed (caltech101's "background");
2. a key in ``aliases`` becomes the class it names;
3. ``key_format: year_first`` moves a leading year to the end ("2012 Audi S4" -> "Audi S4 2012");
4. the rest match a class when both agree after `normalize_key` (case, "_" vs " ",
   parentheses, repeated spaces).

A key that matches no class, a class that no key matches and a class matched twice are all
errors that list the names at fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml

from microclip import __version__
from microclip.errors import TextError, quoted_names
from microclip.io import atomic_write_text
from microclip.text.descriptions import overlong_or_none, validate_descriptions

logger = logging.getLogger(__name__)

KeyFormat = Literal["as_is", "year_first"]
_DOWNLOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class Repository:
    name: str
    title: str
    base_url: str  # e.g. https://raw.githubusercontent.com/<owner>/<repo>
    commit: str  # pinned, full 40-hex commit
    folder: str  # folder of the description files at that commit


@dataclass(frozen=True)
class PublishedFile:
    """One published description file and how its keys map to one dataset's classes."""

    set_name: str
    dataset: str
    repository: Repository
    file: str
    sha256: str | None  # None: not pinned yet (fetching warns)
    aliases: dict[str, str] = field(default_factory=dict)  # published key -> class name
    drop: tuple[str, ...] = ()  # published keys that are no class of the suite
    key_format: KeyFormat = "as_is"

    def url(self, base_url: str | None = None) -> str:
        base = (base_url or self.repository.base_url).rstrip("/")
        return f"{base}/{self.repository.commit}/{self.repository.folder}/{self.file}"


def load_sources(path: Path) -> dict:
    """Parse sources.yaml (``repositories`` and ``sets``) with a where-what error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: description sources file not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"repositories", "sets"} <= set(data):
        raise TextError(f"{path}: expected top-level keys 'repositories' and 'sets'")
    return data


def published_datasets(sources: Mapping, set_name: str) -> list[str]:
    """The datasets a published set covers."""
    return sorted(_set(sources, set_name, where="sources")["datasets"])


def resolve_entry(
    sources: Mapping, set_name: str, dataset: str, *, where: str = "sources.yaml"
) -> PublishedFile:
    """The file entry of ``set_name`` for ``dataset``, following ``dataset: <other set>``."""
    spec = _set(sources, set_name, where=where)
    datasets = spec["datasets"]
    if dataset not in datasets:
        raise TextError(
            f"{where}: description set '{set_name}' has no file for dataset '{dataset}'; it "
            f"covers: {', '.join(sorted(datasets))}. Generate this dataset's descriptions "
            "with rule describe instead."
        )
    entry = datasets[dataset]
    if isinstance(entry, str):  # "same file as in set <entry>"
        if entry == set_name:
            raise TextError(f"{where}: sets.{set_name}.datasets.{dataset} refers to itself")
        return resolve_entry(sources, entry, dataset, where=where)
    repo_name = spec.get("repository")
    repos = sources["repositories"]
    if repo_name not in repos:
        raise TextError(
            f"{where}: sets.{set_name}.repository = {repo_name!r} is not a repository; "
            f"defined: {', '.join(sorted(repos))}"
        )
    repo = repos[repo_name]
    key_format = entry.get("key_format", "as_is")
    if key_format not in ("as_is", "year_first"):
        raise TextError(
            f"{where}: sets.{set_name}.datasets.{dataset}.key_format = {key_format!r}; "
            "allowed: as_is, year_first"
        )
    return PublishedFile(
        set_name=set_name,
        dataset=dataset,
        repository=Repository(
            repo_name,
            repo.get("title", repo_name),
            repo["base_url"],
            repo["commit"],
            repo["folder"],
        ),
        file=entry["file"],
        sha256=entry.get("sha256"),
        aliases=dict(entry.get("aliases") or {}),
        drop=tuple(entry.get("drop") or ()),
        key_format=key_format,
    )


def normalize_key(name: str) -> str:
    """Case-folded, "_" as " ", parentheses removed, whitespace collapsed."""
    text = name.replace("_", " ").replace("(", " ").replace(")", " ")
    return " ".join(text.split()).casefold()


def _year_last(key: str) -> str:
    match = re.fullmatch(r"\s*(\d{4})\s+(.+)", key)
    return f"{match.group(2)} {match.group(1)}" if match else key


def map_keys(
    raw: Mapping[str, list[str]],
    classes: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
    key_format: KeyFormat = "as_is",
    where: str = "published file",
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Rename ``raw``'s keys to ``classes``; return (descriptions in class order, renames).

    ``renames`` maps each published key that was spelled differently to its class.
    Raises ValueError listing the keys that match no class, the classes no key matches,
    the classes matched by several keys, and stale ``drop``/``aliases`` entries.
    """
    aliases = dict(aliases or {})
    by_norm: dict[str, str] = {}
    for name in classes:
        other = by_norm.setdefault(normalize_key(name), name)
        if other != name:
            raise TextError(f"class names {other!r} and {name!r} are equal after normalisation")
    class_set = set(classes)

    problems = []
    stale_drop = [k for k in drop if k not in raw]
    bad_alias = [f"{k!r} -> {v!r}" for k, v in aliases.items() if v not in class_set]
    stale_alias = [k for k in aliases if k not in raw]
    matched: dict[str, list[str]] = {}  # class -> published keys
    unmatched = []
    for key in raw:
        if key in drop:
            continue
        if key in aliases:
            target = aliases[key]
        else:
            target = by_norm.get(
                normalize_key(_year_last(key) if key_format == "year_first" else key)
            )
        if target is None or target not in class_set:
            unmatched.append(key)
        else:
            matched.setdefault(target, []).append(key)
    no_key = [name for name in classes if name not in matched]
    several = [f"{name!r} <- {keys}" for name, keys in matched.items() if len(keys) > 1]
    if unmatched:
        problems.append(f"{len(unmatched)} key(s) match no class: {quoted_names(unmatched, 30)}")
    if no_key:
        problems.append(f"{len(no_key)} class(es) have no key: {quoted_names(no_key, 30)}")
    if several:
        problems.append(f"classes matched by several keys: {'; '.join(several)}")
    if stale_drop:
        problems.append(f"'drop' lists keys not in the file: {quoted_names(stale_drop, 30)}")
    if stale_alias:
        problems.append(f"'aliases' lists keys not in the file: {quoted_names(stale_alias, 30)}")
    if bad_alias:
        problems.append(f"'aliases' points to names that are not classes: {', '.join(bad_alias)}")
    if problems:
        raise TextError(
            f"{where}: its keys do not map onto the {len(classes)} class names; "
            + "; ".join(problems)
            + ". Add the missing spellings to 'aliases' (or 'drop') in descriptions/sources.yaml."
        )
    descriptions = {name: list(raw[matched[name][0]]) for name in classes}
    renames = {matched[name][0]: name for name in classes if matched[name][0] != name}
    return descriptions, renames


def fetch_published(
    *,
    set_name: str,
    dataset: str,
    classes: Sequence[str],
    out_path: Path,
    manifest_path: Path | None = None,
    sources_path: Path = Path("descriptions/sources.yaml"),
    base_urls: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    allow_unpinned: Sequence[str] = (),
) -> dict[str, list[str]]:
    """Download, verify and map one published file; write ``out_path`` (+ manifest).

    ``base_urls`` replaces a repository's base URL (``{repository: url}``) to fetch from a
    mirror; the commit and folder stay. A sha256 other than the pinned one is refused; an
    entry without a pinned sha256 is refused too unless ``allow_unpinned`` (config
    ``descriptions.allow_unpinned``) names the set or the set it reuses; it is then used
    with a warning.
    """
    sources = load_sources(sources_path)
    entry = resolve_entry(sources, set_name, dataset, where=str(sources_path))
    if entry.sha256 is None and not {set_name, entry.set_name} & set(allow_unpinned):
        raise TextError(
            f"{sources_path}: sets.{entry.set_name}.datasets.{dataset} pins no sha256, so the "
            f"file cannot be verified and is refused. Pin it (add its sha256 to the entry), or "
            f"accept it unverified with config `descriptions: {{allow_unpinned: [{set_name}]}}`"
        )
    base = (base_urls or {}).get(entry.repository.name)
    url = entry.url(base)
    payload = _download(url, timeout_s)
    digest = hashlib.sha256(payload).hexdigest()
    if entry.sha256 is None:
        logger.warning(
            "%s: %s is not pinned by sha256 in %s; using it unverified (sha256 %s) as "
            "descriptions.allow_unpinned asks. Pin it by adding this sha256 to the entry.",
            dataset, entry.file, sources_path, digest,
        )  # fmt: skip
    elif digest != entry.sha256.lower():
        raise TextError(
            f"{url}: sha256 {digest} differs from the pinned {entry.sha256} "
            f"({sources_path}: sets.{entry.set_name}.datasets.{dataset}); the file is not the "
            f"one published at commit {entry.repository.commit}. Refusing to use it."
        )
    try:
        raw = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TextError(f"{url}: not a JSON description file ({err})") from None
    if not isinstance(raw, dict):
        raise TextError(f"{url}: expected a JSON object {{class: [sentences]}}")
    descriptions, renames = map_keys(
        raw,
        classes,
        aliases=entry.aliases,
        drop=entry.drop,
        key_format=entry.key_format,
        where=f"{entry.file} ({entry.repository.name}) for {dataset}",
    )
    descriptions = validate_descriptions(descriptions, classes, where=f"{entry.file} for {dataset}")

    text = json.dumps(descriptions, indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(Path(out_path), text)
    if manifest_path is not None:
        counts = [len(s) for s in descriptions.values()]
        manifest = {
            "set": set_name,
            "dataset": dataset,
            "source": "published",
            "repository": entry.repository.name,
            "title": entry.repository.title,
            "commit": entry.repository.commit,
            "file": entry.file,
            "published_url": entry.url(),
            "fetched_from": url,
            "sha256": digest,
            "pinned": entry.sha256 is not None,
            "dropped_keys": list(entry.drop),
            "renamed_keys": renames,
            "num_classes": len(classes),
            "sentences_per_class": {"min": min(counts), "max": max(counts), "total": sum(counts)},
            "overlong_sentences": overlong_or_none(descriptions),  # > 77 CLIP tokens: truncated
            "output_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "microclip_version": __version__,
        }
        atomic_write_text(Path(manifest_path), json.dumps(manifest, indent=1) + "\n")
    logger.info("%s: wrote %s from %s (%d keys renamed)", dataset, out_path, url, len(renames))
    return descriptions


def _download(url: str, timeout_s: float) -> bytes:
    """GET ``url``; retries connection failures and 5xx, not 4xx."""
    for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            err.close()
            if err.code < 500 or attempt == _DOWNLOAD_ATTEMPTS:
                raise OSError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, TimeoutError) as err:
            if attempt == _DOWNLOAD_ATTEMPTS:
                raise OSError(
                    f"{url}: cannot download ({err}); check the network or set a mirror "
                    "(descriptions.base_urls in config.yaml)"
                ) from None
        logger.warning("%s: download attempt %d failed; retrying", url, attempt)
        time.sleep(attempt)
    raise AssertionError("unreachable")


def _set(sources: Mapping, set_name: str, *, where: str) -> Mapping:
    sets = sources["sets"]
    if set_name not in sets:
        raise TextError(
            f"{where}: '{set_name}' is not a published description set; defined: "
            f"{', '.join(sorted(sets))}"
        )
    return sets[set_name]
