"""Which runs form which table: ``ReportGrid``, read from ``results/{run}/grid.json``.

grid.json is written by the workflow from the configuration (``microclip.grid.report_grid`` plus
every dataset's ``dataset.json``, see ``microclip.results.write_grid``). It is the only source of
the report's names: the main grid and each ablation table (methods in config order, datasets,
backbones, seeds), the focus method, the ablation titles and the dataset labels. runs.csv holds
no per-report grouping, so a run may appear in the main table and in several ablation tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microclip.errors import RunError
from microclip.results import read_json_object

if TYPE_CHECKING:
    import pandas as pd

MEAN = "mean"  # the key of the across-datasets column of every table
_AXES = ("methods", "datasets", "backbones", "seeds")
_COLUMNS = {"methods": "method", "datasets": "dataset", "backbones": "backbone", "seeds": "seed"}


@dataclass(frozen=True)
class TableGrid:
    """The runs of one table: every method x dataset x backbone x seed listed here."""

    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    title: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> TableGrid:
        missing = [k for k in _AXES if not isinstance(data.get(k), list)]
        if missing:
            raise RunError(f"{where}: lacks list(s) {missing}; rerun rule write_grid")
        return cls(
            methods=tuple(str(m) for m in data["methods"]),
            datasets=tuple(str(d) for d in data["datasets"]),
            backbones=tuple(str(b) for b in data["backbones"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            title=str(data.get("title") or ""),
        )

    def select(self, frame: pd.DataFrame, *, backbone: str | None = None) -> pd.DataFrame:
        """The rows of ``frame`` (runs.csv or epochs.csv) that belong to this table."""
        mask = frame["method"].notna()
        for axis, column in _COLUMNS.items():
            mask &= frame[column].isin(list(getattr(self, axis)))
        if backbone is not None:
            mask &= frame["backbone"] == backbone
        return frame[mask]


@dataclass(frozen=True)
class ReportGrid:
    """grid.json: the tables of one run and the names to print in them."""

    run: str
    focus_method: str
    main: TableGrid
    ablations: dict[str, TableGrid] = field(default_factory=dict)
    gamma_ablation: str | None = None
    base_methods: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> ReportGrid:
        return cls.from_dict(read_json_object(path), where=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "grid.json") -> ReportGrid:
        missing = [k for k in ("run", "focus_method", "main") if k not in data]
        if missing:
            raise RunError(f"{where}: lacks key(s) {missing}; rerun rule write_grid")
        ablations = data.get("ablations") or {}
        return cls(
            run=str(data["run"]),
            focus_method=str(data["focus_method"]),
            main=TableGrid.from_dict(data["main"], where=f"{where}: main"),
            ablations={
                name: TableGrid.from_dict(spec, where=f"{where}: ablations.{name}")
                for name, spec in ablations.items()
            },
            gamma_ablation=data.get("gamma_ablation") or None,
            base_methods=dict(data.get("base_methods") or {}),
            datasets={k: dict(v) for k, v in (data.get("datasets") or {}).items()},
        )

    # -- run selection ------------------------------------------------------------------------
    def main_runs(self, frame: pd.DataFrame, *, backbone: str | None = None) -> pd.DataFrame:
        return self.main.select(frame, backbone=backbone)

    def ablation(self, name: str) -> TableGrid:
        if name not in self.ablations:
            raise RunError(
                f"grid.json: no ablation table '{name}'; tables: {sorted(self.ablations) or '-'}"
            )
        return self.ablations[name]

    def ablation_runs(
        self, frame: pd.DataFrame, name: str, *, backbone: str | None = None
    ) -> pd.DataFrame:
        return self.ablation(name).select(frame, backbone=backbone)

    # -- order and names ----------------------------------------------------------------------
    def method_order(self, methods: Iterable[str] | None = None) -> list[str]:
        """Main-grid order with the focus method last; ``methods`` keeps only those given
        (unknown ones follow in their given order, before the focus method)."""
        listed = list(self.main.methods)
        chosen = listed if methods is None else list(dict.fromkeys(methods))
        ordered = [m for m in listed if m in chosen] + [m for m in chosen if m not in listed]
        if self.focus_method in ordered:
            ordered.remove(self.focus_method)
            ordered.append(self.focus_method)
        return ordered

    def label(self, dataset: str) -> str:
        """Short column label (dataset.json ``label``); the key when grid.json has none."""
        if dataset == MEAN:
            return "Mean"
        return str(self.datasets.get(dataset, {}).get("label") or dataset)

    def title(self, dataset: str) -> str:
        """Full dataset name for captions (dataset.json ``title``), else its label."""
        return str(self.datasets.get(dataset, {}).get("title") or self.label(dataset))

    def ablation_title(self, name: str) -> str:
        """grid.json's title of ablation table ``name``; its name when it has none."""
        return (self.ablations[name].title if name in self.ablations else "") or name
