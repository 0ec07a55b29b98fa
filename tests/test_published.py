"""microclip/text/published.py (fetch, sha256, key mapping) and description-file validation.

Files are served by a local http.server on 127.0.0.1 laid out like the repositories
(``<repo>/<commit>/<folder>/<file>``). When the reference copies of the CuPL and LaFTer
files exist (../shared/data, never part of the project), every entry of
descriptions/sources.yaml is fetched from them end to end: the pinned sha256 must match
and every key must map onto the suite's class names, one to one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from microclip.errors import TextError
from microclip.text.descriptions import count_overlong, load_descriptions
from microclip.text.published import (
    fetch_published,
    load_sources,
    map_keys,
    normalize_key,
    resolve_entry,
)

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "descriptions" / "sources.yaml"
CLASSNAMES_DIR = REPO / "microclip" / "data" / "classnames"
REFERENCE = REPO.parent / "shared" / "data"  # reference copies; absent in CI
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serve ``tmp_path / 'www'``; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def publish(root: Path, name: str, content: dict | bytes) -> str:
    """Put a file where repository ``toy`` keeps it; return its sha256."""
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    path = root / "toy" / COMMIT / "prompts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_sources(tmp_path: Path, datasets: dict) -> Path:
    sources = {
        "repositories": {
            "toy": {
                "title": "toy set",
                "base_url": "https://example.invalid/toy",
                "commit": COMMIT,
                "folder": "prompts",
            }
        },
        "sets": {
            "toyset": {"repository": "toy", "datasets": datasets},
            "combo": {"datasets": {name: "toyset" for name in datasets}},
        },
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(sources), encoding="utf-8")
    return path


TOY_FILE = {
    "Snow_Owl": ["A white owl."],
    "red fox": ["A red fox.", "A fox in snow."],
    "background": ["Clutter."],
    "ball moss": ["A grey tuft on a branch."],
    "2012 Audi S4 Sedan": ["A sedan."],
}
TOY_CLASSES = ["red fox", "snow owl", "air plant", "Audi S4 Sedan 2012"]


def fetch(tmp_path, base, sources, **kw):
    args = {
        "set_name": "toyset",
        "dataset": "toy",
        "classes": TOY_CLASSES,
        "out_path": tmp_path / "out" / "toy.json",
        "manifest_path": tmp_path / "out" / "toy.manifest.json",
        "sources_path": sources,
        "base_urls": {"toy": f"{base}/toy"},
        "timeout_s": 5.0,
    }
    args.update(kw)
    return fetch_published(**args)


def toy_entry(sha: str | None, **extra) -> dict:
    entry = {
        "file": "toy.json",
        "sha256": sha,
        "drop": ["background"],
        "aliases": {"ball moss": "air plant"},
        "key_format": "year_first",
    }
    entry.update(extra)
    return {"toy": entry}


def test_good_file_is_fetched_verified_and_mapped(tmp_path, file_server):
    root, base = file_server
    sha = publish(root, "toy.json", TOY_FILE)
    sources = write_sources(tmp_path, toy_entry(sha))
    result = fetch(tmp_path, base, sources)
    written = json.loads((tmp_path / "out" / "toy.json").read_text())
    assert list(written) == TOY_CLASSES == list(result)
    assert written["red fox"] == ["A red fox.", "A fox in snow."]
    assert written["air plant"] == ["A grey tuft on a branch."]
    manifest = json.loads((tmp_path / "out" / "toy.manifest.json").read_text())
    assert manifest["sha256"] == sha and manifest["pinned"] is True
    assert manifest["dropped_keys"] == ["background"]
    assert manifest["overlong_sentences"] == 0
    assert manifest["renamed_keys"] == {
        "Snow_Owl": "snow owl",
        "ball moss": "air plant",
        "2012 Audi S4 Sedan": "Audi S4 Sedan 2012",
    }
    assert manifest["fetched_from"].startswith(base)
    assert manifest["published_url"] == f"https://example.invalid/toy/{COMMIT}/prompts/toy.json"


def test_a_set_can_reuse_another_sets_entry(tmp_path, file_server):
    root, base = file_server
    sources = write_sources(tmp_path, toy_entry(publish(root, "toy.json", TOY_FILE)))
    result = fetch(tmp_path, base, sources, set_name="combo")
    assert list(result) == TOY_CLASSES
    manifest = json.loads((tmp_path / "out" / "toy.manifest.json").read_text())
    assert manifest["set"] == "combo" and manifest["file"] == "toy.json"


def test_wrong_checksum_is_an_error_and_nothing_is_written(tmp_path, file_server):
    root, base = file_server
    publish(root, "toy.json", TOY_FILE)
    sources = write_sources(tmp_path, toy_entry("0" * 64))
    with pytest.raises(ValueError, match=r"sha256 [0-9a-f]{64} differs from the pinned 0{64}"):
        fetch(tmp_path, base, sources)
    assert not (tmp_path / "out").exists()


def test_unmatched_keys_and_keyless_classes_are_listed(tmp_path, file_server):
    root, base = file_server
    content = {**TOY_FILE, "grey wolf": ["A wolf."]}
    sources = write_sources(tmp_path, toy_entry(publish(root, "toy.json", content)))
    classes = [*TOY_CLASSES, "lynx"]
    with pytest.raises(ValueError) as info:
        fetch(tmp_path, base, sources, classes=classes)
    message = str(info.value)
    assert "1 key(s) match no class: 'grey wolf'" in message
    assert "1 class(es) have no key: 'lynx'" in message
    assert "toy.json" in message
    assert not (tmp_path / "out").exists()


def test_unpinned_file_is_refused_unless_the_config_opts_in(tmp_path, file_server, caplog):
    root, base = file_server
    sha = publish(root, "toy.json", TOY_FILE)
    sources = write_sources(tmp_path, toy_entry(None))
    with pytest.raises(TextError, match="pins no sha256.*allow_unpinned"):
        fetch(tmp_path, base, sources)
    assert not (tmp_path / "out" / "toy.json").exists()
    with caplog.at_level(logging.WARNING, logger="microclip.text.published"):
        fetch(tmp_path, base, sources, allow_unpinned=["toyset"])
    assert "not pinned by sha256" in caplog.text and sha in caplog.text
    assert json.loads((tmp_path / "out" / "toy.manifest.json").read_text())["pinned"] is False


def test_missing_file_on_the_server_is_a_clear_error(tmp_path, file_server):
    _, base = file_server
    sources = write_sources(tmp_path, toy_entry("0" * 64))
    with pytest.raises(OSError, match=r"toy\.json: HTTP 404"):
        fetch(tmp_path, base, sources)


def test_map_keys_reports_classes_matched_twice_and_stale_table_entries():
    raw = {"Red Fox": ["a"], "red_fox": ["b"], "owl": ["c"]}
    with pytest.raises(ValueError) as info:
        map_keys(raw, ["red fox", "owl"], drop=["gone"], aliases={"lost": "owl"})
    message = str(info.value)
    assert "classes matched by several keys: 'red fox' <- ['Red Fox', 'red_fox']" in message
    assert "'drop' lists keys not in the file: 'gone'" in message
    assert "'aliases' lists keys not in the file: 'lost'" in message


def test_normalize_key_ignores_case_underscores_and_parentheses():
    assert normalize_key("Apartment_Building  (Outdoor)") == "apartment building outdoor"


def test_unknown_dataset_of_a_published_set_points_to_describe():
    sources = load_sources(SOURCES)
    with pytest.raises(TextError, match="rule describe"):
        resolve_entry(sources, "microclip", "cub")


def test_microclip_default_is_cupl_everywhere_it_covers_and_lafter_for_eurosat():
    sources = load_sources(SOURCES)
    cupl = sources["sets"]["cupl"]["datasets"]
    default = sources["sets"]["microclip"]["datasets"]
    assert {d: s for d, s in default.items() if s != "cupl"} == {"eurosat": "lafter"}
    assert set(default) == set(cupl) | {"eurosat"}
    assert resolve_entry(sources, "microclip", "eurosat").file == "EuroSAT.json"
    pinned = {d: resolve_entry(sources, "microclip", d).sha256 for d in default}
    assert [d for d, sha in pinned.items() if sha is None] == ["imagenet"]


# --- against the reference copies (skipped where ../shared/data is absent) ---------------

ENTRIES = [
    (set_name, dataset)
    for set_name in ("cupl", "lafter")
    for dataset in load_sources(SOURCES)["sets"][set_name]["datasets"]
]


@pytest.fixture
def reference_mirror(file_server):
    """The served folder mirrors each repository's pinned folder via symlinks."""
    root, base = file_server
    sources = load_sources(SOURCES)
    for name, repo in sources["repositories"].items():
        if not (REFERENCE / name).is_dir():
            continue
        link = root / name / repo["commit"] / repo["folder"]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REFERENCE / name, target_is_directory=True)
    return {name: f"{base}/{name}" for name in sources["repositories"]}


@pytest.mark.parametrize(("set_name", "dataset"), ENTRIES, ids=[f"{s}-{d}" for s, d in ENTRIES])
def test_published_keys_map_one_to_one_onto_suite_classes(
    set_name, dataset, reference_mirror, tmp_path
):
    entry = resolve_entry(load_sources(SOURCES), set_name, dataset)
    reference = REFERENCE / set_name / entry.file
    classnames = CLASSNAMES_DIR / f"{dataset}.json"
    if not reference.is_file():
        pytest.skip(f"no reference copy of {entry.file}")
    if not classnames.is_file():
        pytest.skip(f"{classnames.name} not written yet")
    classes = json.loads(classnames.read_text(encoding="utf-8"))
    result = fetch_published(
        set_name=set_name,
        dataset=dataset,
        classes=classes,
        out_path=tmp_path / f"{dataset}.json",
        sources_path=SOURCES,
        base_urls=reference_mirror,
    )  # raises on a sha256 mismatch or any unmatched key / keyless class
    assert list(result) == classes
    assert all(result.values())


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="no reference copies")
def test_pinned_sha256_sums_agree_with_the_reference_sums():
    sources = load_sources(SOURCES)
    for set_name in ("cupl", "lafter"):
        sums_file = REFERENCE / set_name / "SHA256SUMS"
        sums = dict(line.split()[::-1] for line in sums_file.read_text().splitlines() if line)
        for dataset, entry in sources["sets"][set_name]["datasets"].items():
            if entry["sha256"] is not None:
                assert sums[entry["file"]] == entry["sha256"], (set_name, dataset)


# --- validation on load (microclip/text/descriptions.py) ---------------------------------


def test_load_descriptions_returns_class_order_and_drops_blank_sentences(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"b": ["  two  ", ""], "a": ["one"]}), encoding="utf-8")
    assert load_descriptions(path, ["a", "b"]) == {"a": ["one"], "b": ["two"]}


def test_load_descriptions_lists_missing_empty_and_unknown_classes_with_the_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a": ["one"], "b": [" "], "zzz": ["x"]}), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_descriptions(path, ["a", "b", "c"])
    message = str(info.value)
    assert str(path) in message
    assert "have no entry: 'c'" in message
    assert "no non-empty sentence: 'b'" in message
    assert "not class names: 'zzz'" in message


def test_count_overlong_counts_sentences_past_clips_77_tokens():
    short = "a photo of a red fox."
    long = "a photo of a red fox " + "with a very bushy tail " * 20
    assert count_overlong([short, long, long]) == 2
    assert count_overlong([short], context_length=5) == 1
