"""``connlab report RUN_DIR... [--out FILE]`` — one self-contained HTML page from run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from connlab.checkpoint import check_output
from connlab.errors import UserError
from connlab.report.page import build_report, load_run
from connlab.runs import read_json_object


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders (each with config.json), or a `connlab demo` folder (with demo.json)")
    p.add_argument("--out", type=Path, default=None,
                   help="the page (default: report.html in the demo folder, or beside the first run folder)")
    p.set_defaults(run=run)


def expand(run_dirs: list[Path]) -> tuple[list[Path], dict | None, Path | None]:
    """Run folders from the arguments: a demo folder stands for its parts. (folders, demo record, demo dir)."""
    folders, demo, demo_dir = [], None, None
    for d in run_dirs:
        d = Path(d)
        if not d.exists():
            raise UserError(f"{d}: no such run folder")
        if not d.is_dir():
            raise UserError(f"{d}: a file, not a run folder")
        if (d / "demo.json").is_file() and not (d / "config.json").is_file():
            demo, demo_dir = read_json_object(d / "demo.json"), d
            if not isinstance(demo.get("parts", []), list):
                raise UserError(f"{d / 'demo.json'}: \"parts\" is not a list; the file is damaged")
            parts = list(dict.fromkeys(part_folder(d, r) for r in demo.get("parts", []) if isinstance(r, dict)
                                       and r.get("folder")))
            found = [d / f for f in parts if (d / f / "config.json").is_file()]
            if not found:
                raise UserError(f"{d}: the demo folder holds no finished run folder yet")
            folders += found
        elif not (d / "config.json").is_file():
            raise UserError(f"{d}: not a connlab run folder (no config.json)")
        else:
            folders.append(d)
    return list(dict.fromkeys(folders)), demo, demo_dir


def part_folder(demo_dir: Path, record: dict) -> str:
    """A demo.json part's ``folder``: a plain name of a folder inside the demo folder, else a UserError
    (a record that points elsewhere, ``../x`` or ``/etc``, would read another folder into the report)."""
    folder = record["folder"]
    inside = isinstance(folder, str) and not Path(folder).is_absolute() and ".." not in Path(folder).parts
    if not inside or not (demo_dir / folder).resolve().is_relative_to(demo_dir.resolve()):
        raise UserError(f"{demo_dir / 'demo.json'}: part {record.get('name')!r} names the folder {folder!r}, "
                        "which is not inside the demo folder; the file is damaged")
    return folder


def run(args: argparse.Namespace) -> int:
    folders, demo, demo_dir = expand(args.run_dirs)
    for f in folders:  # validate every folder before writing anything
        load_run(f)
    out = args.out or ((demo_dir or folders[0].parent) / "report.html")
    check_output(out, "--out")
    page = build_report(folders, out, demo=demo)
    print(f"report: {page}")
    return 0

