"""``prepare``: turn a dataset's files into a checked manifest, and the ``datasets`` table.

Everything after ``prepare`` reads only the manifest, so this is where a missing,
incomplete or corrupt dataset must stop the pipeline, with a message that says what is
wrong and how to get the files. Checks, in order: the files are there (or downloaded when
allowed), the protocol's class list and labels are consistent, every class has images on
both sides, the split sizes equal the spec's (``check_counts``; off for partial or
miniature copies), and every listed image exists and decodes (``verify``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from microclip.data.base import (
    DATASETS,
    DatasetError,
    DatasetSpec,
    Manifest,
    Sample,
    write_manifest,
)

log = logging.getLogger(__name__)

MAX_LISTED = 5  # examples named in an error message


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return DATASETS.get(dataset) if isinstance(dataset, str) else dataset


def _listing(items: Sequence[object]) -> str:
    shown = "; ".join(str(x) for x in items[:MAX_LISTED])
    return shown + (f"; ... ({len(items)} in all)" if len(items) > MAX_LISTED else "")


def decode_error(path: str) -> str | None:
    """Why ``path`` cannot be used as an image, or None if it decodes.

    JPEGs decode at reduced size (``draft``): the whole stream is still read, so truncated
    and garbled files fail, at a fraction of the cost of a full decode.
    """
    try:
        with Image.open(path) as image:
            image.draft(None, (64, 64))
            image.load()
        return None
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"cannot decode ({err})"


def check_manifest(
    spec: DatasetSpec,
    manifest: Manifest,
    *,
    root: Path,
    verify: bool = True,
    check_counts: bool = True,
    workers: int | None = None,
) -> None:
    """Raise DatasetError unless ``manifest`` is a complete, usable protocol split of ``spec``."""
    key, help_text = spec.key, spec.download_help(Path(root))
    classes = spec.classes()
    k = len(classes)
    if manifest.classes != classes or k != spec.num_classes:
        raise DatasetError(
            f"{key}: the manifest's {len(manifest.classes)} classes differ from the package's "
            f"{k} (spec: {spec.num_classes}); a bug in the dataset's build_manifest"
        )
    splits = {"train (adapted on)": manifest.train, "test (scored)": manifest.test}
    for name, samples in splits.items():
        bad = [s for s in samples if not 0 <= s.label < k]
        if bad:
            raise DatasetError(f"{key}: {name} has labels outside 0..{k - 1}: {_listing(bad)}")
        dupes = [p for p, n in Counter(s.path for s in samples).items() if n > 1]
        if dupes:
            raise DatasetError(f"{key}: {name} lists images twice: {_listing(dupes)}")
        seen = {s.label for s in samples}
        absent = [classes[i] for i in range(k) if i not in seen]
        if absent:
            raise DatasetError(
                f"{key}: {name} has no images of {len(absent)} classes ({_listing(absent)}); "
                f"the copy is incomplete. {help_text}"
            )
    overlap = {s.path for s in manifest.train} & {s.path for s in manifest.test}
    if overlap:
        raise DatasetError(f"{key}: images both adapted on and scored: {_listing(sorted(overlap))}")
    if check_counts:
        for name, samples, expected in (
            ("train", manifest.train, spec.expected_train),
            ("test", manifest.test, spec.expected_test),
        ):
            if expected is not None and len(samples) != expected:
                raise DatasetError(
                    f"{key}: the {name} split has {len(samples):,} images, the protocol has "
                    f"{expected:,}; the copy is incomplete or a different version. Re-fetch it, "
                    "or turn the count check off (check_counts=False) for a deliberate subset."
                )
    _check_files(spec, [*manifest.train, *manifest.test], help_text, verify, workers)


def _check_files(
    spec: DatasetSpec, samples: list[Sample], help_text: str, verify: bool, workers: int | None
) -> None:
    paths = sorted({s.path for s in samples})
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DatasetError(
            f"{spec.key}: {len(missing):,} listed images do not exist: {_listing(missing)}. "
            f"{help_text}"
        )
    if not verify:
        return
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = [(p, e) for p, e in zip(paths, pool.map(decode_error, paths), strict=True) if e]
    if errors:
        raise DatasetError(
            f"{spec.key}: {len(errors):,} images cannot be decoded: "
            f"{_listing([f'{p}: {e}' for p, e in errors])}. Re-download or re-extract them."
        )


def prepare_dataset(
    key: str | DatasetSpec,
    *,
    root: Path,
    out_dir: Path,
    seed: int = 0,
    verify: bool = True,
    check_counts: bool = True,
    download: bool = False,
    workers: int | None = None,
) -> Manifest:
    """Build, check and write the manifest of one dataset (a registry key or a spec object).

    ``root`` is the data root that holds every dataset's folder; ``seed`` picks the seeded
    protocol splits (the benchmark fixes it to 0); ``download`` lets torchvision fetch files
    that are still served (never set it in a dry run); ``verify`` decodes every image;
    ``check_counts`` compares split sizes with the spec's (turn it off for subsets).
    """
    spec = _spec(key)
    root = Path(root).resolve()
    if not spec.is_present(root):
        if download and hasattr(spec, "download"):
            log.info("%s: downloading into %s", spec.key, root)
            root.mkdir(parents=True, exist_ok=True)
            spec.download(root)
        elif download:
            raise DatasetError(
                f"{spec.key}: not found under {root} and it cannot be downloaded automatically. "
                f"{spec.download_help(root)}"
            )
    if not spec.is_present(root):
        raise DatasetError(f"{spec.key}: not found under {root}. {spec.download_help(root)}")
    log.info("%s: reading the layout under %s (seed %d)", spec.key, root, seed)
    manifest = spec.build_manifest(root, seed=seed)
    check_manifest(
        spec, manifest, root=root, verify=verify, check_counts=check_counts, workers=workers
    )
    write_manifest(manifest, Path(out_dir))
    log.info(
        "%s: %d adapted / %d scored images, %d classes -> %s",
        spec.key,
        len(manifest.train),
        len(manifest.test),
        manifest.num_classes,
        out_dir,
    )
    return manifest


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def datasets_table(data_root: Path, keys: Sequence[str] | None = None) -> str:
    """The registry as a plain-text table: key, K, split sizes, protocol, source, present."""
    header = ("key", "K", "adapt", "score", "protocol", "source", "present")
    rows = [header]
    for key in keys if keys is not None else DATASETS.names():
        spec = DATASETS.get(key)
        try:
            present = "yes" if spec.is_present(Path(data_root)) else "no"
        except OSError:
            present = "?"
        rows.append(
            (
                key,
                str(spec.num_classes),
                _size(spec.expected_train),
                _size(spec.expected_test),
                getattr(spec, "protocol", ""),
                spec.source,
                present,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 2, 3}  # numbers align right
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n(data root: {Path(data_root)})\n"
