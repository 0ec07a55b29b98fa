"""The ``custom`` dataset type: add a dataset in ``config.yaml`` without writing code.

A config entry names where the images are and how they are labelled; the resulting spec
goes through the same ``prepare`` checks as the registered datasets. Three layouts:

1. Folders (default): ``<root>/train/<class>/<image>`` (adapted on) and
   ``<root>/test/<class>/<image>`` (scored). Without ``classes`` the class list is the sorted
   folder names of ``train/`` (underscores read as spaces).
2. Two CSV files, ``train: train.csv`` and ``test: test.csv``, with columns ``path,label``;
   ``label`` is a 0-based index into ``classes`` or a class name.
3. One CSV, ``csv: labels.csv``, with columns ``path,label,split`` (``split``: train/test).

Relative paths are read from ``root``, and a relative ``root`` from the data root.
Example entry (YAML)::

    my_flowers:
      type: custom
      root: my_flowers                  # <data root>/my_flowers
      classes: [daisy, rose, tulip]     # label order; or a .json list / .txt file
      templates: ["a photo of a {}, a type of flower."]
      descriptions: descriptions/mine/my_flowers.json   # optional; else descriptions/{set}/
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from microclip.data.base import DatasetError, DatasetSpec, Manifest
from microclip.data.layout import ClassIndex, class_folders, image_files, make_manifest
from microclip.errors import ConfigError

# "descriptions" (a description file path) is read by the workflow, not by the spec.
ALLOWED_KEYS = (
    "type",
    "root",
    "classes",
    "templates",
    "train",
    "test",
    "csv",
    "title",
    "descriptions",
)
DEFAULT_TEMPLATES = ("a photo of a {}.",)


class CustomDataset(DatasetSpec):
    """A dataset defined by a config entry instead of a module."""

    source = "custom"
    protocol = "train -> test (config)"

    def __init__(
        self,
        *,
        key: str,
        root: Path,
        classes: list[str] | None,
        templates: list[str],
        train: str = "train",
        test: str = "test",
        csv_file: str | None = None,
        title: str | None = None,
        classes_from: str | None = None,
    ) -> None:
        self.key = key  # type: ignore[misc]
        self.title = title or key  # type: ignore[misc]
        self.label = title or key  # type: ignore[misc]
        self.root = Path(root)
        self._classes = classes
        self._templates = list(templates)
        self.train_source = train
        self.test_source = test
        self.csv_file = csv_file
        self.classes_from = classes_from  # "the list in the config" or the classes file
        self.num_classes = len(classes) if classes else 0  # type: ignore[misc]

    def base(self, root: Path) -> Path:
        return self.root if self.root.is_absolute() else Path(root) / self.root

    def classes(self) -> list[str]:
        if self._classes is None and self.root.is_absolute():
            self._scan_classes(self.root / self.train_source)
        if self._classes is None:
            raise DatasetError(
                f"{self.key}: no class list: give custom_datasets.{self.key}.classes, or the data root "
                f"so that the folder names of {self.root / self.train_source} can be read"
            )
        return list(self._classes)

    def _scan_classes(self, train_dir: Path) -> None:
        """Without a ``classes`` list, the class folders of ``train/`` name the classes."""
        if train_dir.is_dir():
            names = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and p.name[0] != ".")
            self._classes = [n.replace("_", " ") for n in names]
            self.num_classes = len(self._classes)  # type: ignore[misc]

    def templates(self) -> list[str]:
        return list(self._templates)

    def classes_source(self) -> str:
        if self.classes_from is not None:
            return f"custom_datasets.{self.key}.classes ({self.classes_from})"
        return f"the class folders of {self.root / self.train_source}"

    def _sources(self, root: Path) -> list[Path]:
        base = self.base(root)
        if self.csv_file:
            return [base / self.csv_file]
        return [base / self.train_source, base / self.test_source]

    def is_present(self, root: Path) -> bool:
        return all(p.exists() for p in self._sources(root))

    def download_help(self, root: Path) -> str:
        base = self.base(root)
        if self.csv_file:
            return f"create {base / self.csv_file} with columns path,label,split"
        return (
            f"put the images in {base / self.train_source} and {base / self.test_source}: each "
            "a folder with one sub-folder per class, or a CSV file with columns path,label"
        )

    def build_manifest(self, root: Path, *, seed: int = 0) -> Manifest:
        root = Path(root).resolve()
        base = self.base(root)
        if self.csv_file:
            rows = _read_csv(self, base / self.csv_file, ("path", "label", "split"))
            bad = sorted({r["split"] for r in rows} - {"train", "test"})
            if bad:
                raise DatasetError(
                    f"{self.key}: {base / self.csv_file}: split values {bad} are not allowed; "
                    "allowed: train, test"
                )
            parts = {s: [r for r in rows if r["split"] == s] for s in ("train", "test")}
            index = ClassIndex(self, self.classes())
            train, test = (self._labelled(base, parts[s], index) for s in ("train", "test"))
            return make_manifest(self, train, test)
        train_src, test_src = base / self.train_source, base / self.test_source
        if self._classes is None:
            self._scan_classes(train_src)
        return make_manifest(self, self._split(root, train_src), self._split(root, test_src))

    def _split(self, root: Path, source: Path) -> list[tuple[Path, int]]:
        """One split from a folder-per-class tree or a path,label CSV."""
        if source.is_dir():
            folders = class_folders(self, root, source)
            return [(p, label) for label, f in sorted(folders.items()) for p in image_files(f)]
        if source.suffix.lower() == ".csv" and source.is_file():
            rows = _read_csv(self, source, ("path", "label"))
            return self._labelled(self.base(root), rows, ClassIndex(self, self.classes()))
        raise DatasetError(
            f"{self.key}: {source} is neither a folder of class folders nor a .csv file. "
            f"{self.download_help(root)}"
        )

    def _labelled(
        self, base: Path, rows: list[dict[str, str]], index: ClassIndex
    ) -> list[tuple[Path, int]]:
        k = len(index.classes)
        samples = []
        for row in rows:
            raw, where = row["label"].strip(), f"{row['_file']}:{row['_line']}"
            if raw.lstrip("-").isdigit():
                label = int(raw)
                if not 0 <= label < k:
                    raise DatasetError(
                        f"{self.key}: {where}: label {label} is outside 0..{k - 1} "
                        f"({k} classes given)"
                    )
            else:
                label = index(raw, where=where)
            path = Path(row["path"])
            samples.append((path if path.is_absolute() else base / path, label))
        return samples


def _read_csv(spec: DatasetSpec, path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"{spec.key}: {path} not found. {spec.download_help(path.parent)}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{spec.key}: {path} lacks columns {missing}; expected {','.join(columns)} "
                f"(got {reader.fieldnames})"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            row.update(_file=str(path), _line=str(line))
            rows.append(row)
    return rows


def _class_list(key: str, value: Any, base: Path) -> list[str] | None:
    """``classes:`` as a list, or a path to a JSON list or a text file with one name a line."""
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        names = list(value)
    elif isinstance(value, str):
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.is_file():
            raise ConfigError(f"custom_datasets.{key}.classes: {path} not found")
        text = path.read_text(encoding="utf-8")
        names = (
            json.loads(text)
            if path.suffix == ".json"
            else [s.strip() for s in text.splitlines() if s.strip()]
        )
    else:
        raise ConfigError(
            f"custom_datasets.{key}.classes must be a list of names or a path to a "
            f".json/.txt file, got {value!r}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"custom_datasets.{key}.classes has duplicate names")
    return names


def custom_dataset_from_config(
    key: str, entry: Mapping[str, Any], *, data_root: Path | None = None
) -> CustomDataset:
    """Build a ``custom`` dataset spec from its ``config.yaml`` entry (see the module docstring).

    ``data_root`` resolves a relative ``root`` and a relative ``classes`` file path at
    construction time; without it they are resolved against the root given to ``prepare``.
    """
    unknown = sorted(set(entry) - set(ALLOWED_KEYS))
    if unknown:
        raise ConfigError(
            f"custom_datasets.{key} has unknown keys {unknown}; allowed: {', '.join(ALLOWED_KEYS)}"
        )
    if entry.get("type", "custom") != "custom":
        raise ConfigError(
            f"custom_datasets.{key}.type = {entry.get('type')!r}; allowed: custom"
        )
    if "root" not in entry:
        raise ConfigError(
            f"custom_datasets.{key} needs 'root' (the folder holding its images)"
        )
    if "csv" in entry and ("train" in entry or "test" in entry):
        raise ConfigError(
            f"custom_datasets.{key}: give either 'csv' or 'train'/'test', not both"
        )
    root = Path(entry["root"])
    base = root if root.is_absolute() or data_root is None else Path(data_root) / root
    templates = entry.get("templates", list(DEFAULT_TEMPLATES))
    if not (
        isinstance(templates, list)
        and templates
        and all(isinstance(t, str) and t.count("{}") == 1 for t in templates)
    ):
        raise ConfigError(
            f"custom_datasets.{key}.templates must be a non-empty list of strings with one "
            f"'{{}}' for the class name, got {templates!r}"
        )
    classes = _class_list(key, entry.get("classes"), base)
    csv_sources = [entry.get(k, "") for k in ("csv", "train", "test")]
    if classes is None and any(str(s).lower().endswith(".csv") for s in csv_sources):
        raise ConfigError(
            f"custom_datasets.{key}: a CSV layout needs 'classes' (the label order)"
        )
    return CustomDataset(
        key=key,
        root=root if data_root is None else base,
        classes=classes,
        templates=templates,
        train=str(entry.get("train", "train")),
        test=str(entry.get("test", "test")),
        csv_file=entry.get("csv"),
        title=entry.get("title"),
        classes_from=None if classes is None else (
            entry["classes"] if isinstance(entry["classes"], str) else "the list in the config"
        ),
    )


def custom_dataset_problems(
    key: str, entry: Mapping[str, Any], *, data_root: Path | None = None
) -> list[str]:
    """What is wrong with a ``custom_datasets`` entry (empty when it builds)."""
    try:
        custom_dataset_from_config(key, entry, data_root=data_root)
    except ConfigError as err:
        return [str(err)]
    return []
