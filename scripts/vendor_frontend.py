#!/usr/bin/env python3
"""Vendor pinned front-end libraries, with their licences, into the web package.

Each library is fetched as its released npm tarball with the ordinary npm client
(``npm pack <pkg>@<version>``, so whatever registry npm is configured for is used);
only the listed dist files plus the licence/notice files are taken out of it and
written under ``src/xietong/web/static/vendor/<name>/``.  A ``MANIFEST.json`` next to
them records, per library, the npm package, version, tarball integrity, licence files
and the sha256 and size of every vendored file.

Usage::

    python scripts/vendor_frontend.py            # vendor (no-op when already up to date)
    python scripts/vendor_frontend.py --force    # re-fetch and rewrite everything
    python scripts/vendor_frontend.py --check    # verify files against MANIFEST.json;
                                                 # no network, exit 1 on any mismatch

To bump a library, change its version in ``LIBRARIES`` below and run the script.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENDOR_DIR = REPO_ROOT / "src" / "xietong" / "web" / "static" / "vendor"
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = 1
# Files in the vendor root that this script does not manage.
UNMANAGED_ROOT_FILES = frozenset({MANIFEST_NAME, "README.md"})


@dataclass(frozen=True)
class Library:
    """A pinned npm package and the files taken from its tarball.

    ``files`` are paths inside the package (relative to the tarball's ``package/``
    folder).  Each is written to ``vendor/<name>/`` with ``strip`` removed from the
    front, so relative references between files (CSS -> fonts) keep working.
    ``licenses`` must all exist; ``optional_notices`` are taken when present.
    """

    name: str
    package: str
    version: str
    files: tuple[str, ...]
    licenses: tuple[str, ...]
    optional_notices: tuple[str, ...] = ("NOTICE", "NOTICE.txt", "NOTICE.md")
    strip: str = "dist/"

    def dest_for(self, member: str) -> str:
        if member.startswith(self.strip):
            return member[len(self.strip) :]
        return member


_BPMN_FONT = "dist/assets/bpmn-font"

# Pinned versions: the current stable ("latest" dist-tag) at the time of pinning.
LIBRARIES: tuple[Library, ...] = (
    Library(
        name="htmx",
        package="htmx.org",
        version="2.0.11",
        files=("dist/htmx.min.js",),
        licenses=("LICENSE",),
    ),
    Library(
        name="echarts",
        package="echarts",
        version="6.1.0",
        files=("dist/echarts.min.js",),
        # The main LICENSE points at licenses/LICENSE-d3 for embedded d3 code.
        licenses=("LICENSE", "licenses/LICENSE-d3"),
    ),
    Library(
        name="bpmn-js",
        package="bpmn-js",
        version="18.31.1",
        files=(
            "dist/bpmn-viewer.production.min.js",
            "dist/assets/bpmn-js.css",
            "dist/assets/diagram-js.css",
            # bpmn.css refers to every one of these font files via ../font/.
            f"{_BPMN_FONT}/css/bpmn.css",
            f"{_BPMN_FONT}/font/bpmn.eot",
            f"{_BPMN_FONT}/font/bpmn.woff2",
            f"{_BPMN_FONT}/font/bpmn.woff",
            f"{_BPMN_FONT}/font/bpmn.ttf",
            f"{_BPMN_FONT}/font/bpmn.svg",
        ),
        # Note: the bpmn-js licence requires the bpmn.io watermark to stay visible.
        licenses=("LICENSE",),
    ),
    Library(
        name="frappe-gantt",
        package="frappe-gantt",
        version="1.2.2",
        files=("dist/frappe-gantt.umd.js", "dist/frappe-gantt.css"),
        licenses=("license.txt",),
    ),
)


class VendorError(Exception):
    """A failure that should stop the script with a message."""


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.problems.append(message)

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_relpath(rel: str) -> PurePosixPath:
    """Reject absolute paths and ``..`` so nothing is written outside a library dir."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", "", ".") for p in path.parts):
        raise VendorError(f"unsafe path in specification or manifest: {rel!r}")
    return path


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless identical content is already there."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp-vendor")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def files_under(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def remove_empty_dirs(directory: Path) -> None:
    if not directory.is_dir():
        return
    for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()


def load_manifest(vendor_dir: Path) -> dict[str, object] | None:
    path = vendor_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VendorError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise VendorError(f"{path}: not a JSON object")
    return data


def dump_manifest(manifest: dict[str, object]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# ------------------------------------------------------------------------------ check


def check(vendor_dir: Path, libraries: Iterable[Library] = LIBRARIES) -> CheckResult:
    """Verify the vendored tree against MANIFEST.json and the pins.  No network."""
    result = CheckResult()
    try:
        manifest = load_manifest(vendor_dir)
    except VendorError as exc:
        result.add(str(exc))
        return result
    if manifest is None:
        result.add(f"missing {vendor_dir / MANIFEST_NAME}")
        return result
    if manifest.get("format") != MANIFEST_FORMAT:
        result.add(f"manifest format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT}")
    entries = manifest.get("libraries")
    if not isinstance(entries, dict):
        result.add("manifest has no 'libraries' object")
        return result

    pinned = {lib.name: lib for lib in libraries}
    for name in sorted(set(entries) - set(pinned)):
        result.add(f"{name}: in manifest but not pinned in {Path(__file__).name}")
    for name in sorted(set(pinned) - set(entries)):
        result.add(f"{name}: pinned but not in manifest (run the script to vendor it)")

    for name in sorted(set(pinned) & set(entries)):
        _check_library(vendor_dir, pinned[name], entries[name], result)

    expected_top = set(pinned) | UNMANAGED_ROOT_FILES
    if vendor_dir.is_dir():
        for child in sorted(vendor_dir.iterdir()):
            if child.name not in expected_top:
                result.add(f"unexpected entry in vendor dir: {child.name}")
    return result


def _check_library(vendor_dir: Path, lib: Library, entry: object, result: CheckResult) -> None:
    if not isinstance(entry, dict):
        result.add(f"{lib.name}: manifest entry is not an object")
        return
    if entry.get("package") != lib.package:
        result.add(f"{lib.name}: manifest package {entry.get('package')!r} != pin {lib.package!r}")
    if entry.get("version") != lib.version:
        result.add(
            f"{lib.name}: manifest version {entry.get('version')!r} != pin {lib.version!r} "
            "(re-run the script to re-vendor)"
        )
    files = entry.get("files")
    if not isinstance(files, dict) or not files:
        result.add(f"{lib.name}: manifest lists no files")
        return

    expected_dests = {lib.dest_for(m) for m in lib.files}
    missing_from_manifest = expected_dests - set(files)
    for dest in sorted(missing_from_manifest):
        result.add(f"{lib.name}: pinned file {dest} not in manifest (re-run the script)")

    license_files = entry.get("license_files")
    if not isinstance(license_files, list) or not license_files:
        result.add(f"{lib.name}: manifest names no licence file")
    else:
        for lic in license_files:
            if lic not in files:
                result.add(f"{lib.name}: licence file {lic!r} not among manifest files")

    lib_dir = vendor_dir / lib.name
    for rel, meta in sorted(files.items()):
        try:
            safe_relpath(rel)
        except VendorError as exc:
            result.add(f"{lib.name}: {exc}")
            continue
        path = lib_dir / rel
        if not isinstance(meta, dict) or "sha256" not in meta:
            result.add(f"{lib.name}/{rel}: manifest entry has no sha256")
            continue
        if not path.is_file():
            result.add(f"{lib.name}/{rel}: missing")
            continue
        size = path.stat().st_size
        if "size" in meta and size != meta["size"]:
            result.add(f"{lib.name}/{rel}: size {size} != manifest {meta['size']}")
            continue
        actual = sha256_file(path)
        if actual != meta["sha256"]:
            result.add(f"{lib.name}/{rel}: sha256 {actual} != manifest {meta['sha256']}")

    for extra in sorted(files_under(lib_dir) - set(files)):
        result.add(f"{lib.name}/{extra}: present but not in manifest")


# ----------------------------------------------------------------------------- vendor


def npm_pack(lib: Library, dest: Path, npm: str) -> tuple[Path, dict[str, object]]:
    """Download ``lib``'s released tarball into ``dest`` with ``npm pack``."""
    spec = f"{lib.package}@{lib.version}"
    cmd = [npm, "pack", spec, "--pack-destination", str(dest), "--json", "--ignore-scripts"]
    proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise VendorError(f"npm pack {spec} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    try:
        info = json.loads(proc.stdout)[0]
        tarball = dest / info["filename"]
    except (json.JSONDecodeError, IndexError, KeyError, TypeError) as exc:
        raise VendorError(f"npm pack {spec}: unexpected output: {proc.stdout[:500]!r}") from exc
    if not tarball.is_file():
        raise VendorError(f"npm pack {spec}: tarball {tarball} not found")
    if info.get("name") != lib.package or info.get("version") != lib.version:
        raise VendorError(f"npm pack {spec}: got {info.get('name')}@{info.get('version')} instead")
    return tarball, info


def read_members(tarball: Path, wanted: Iterable[str]) -> dict[str, bytes | None]:
    """Return the bytes of each wanted package path (``None`` if absent).

    Only regular-file members are read; nothing is extracted to disk.
    """
    wanted = list(wanted)
    out: dict[str, bytes | None] = dict.fromkeys(wanted)
    by_name: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            # npm tarballs put everything under a single top folder, normally "package/".
            parts = name.split("/", 1)
            if len(parts) == 2:
                by_name.setdefault(parts[1], member)
        for rel in wanted:
            member = by_name.get(rel)
            if member is None:
                continue
            if not member.isfile():
                raise VendorError(f"{tarball.name}: {rel} is not a regular file")
            fh = tar.extractfile(member)
            if fh is None:
                raise VendorError(f"{tarball.name}: cannot read {rel}")
            out[rel] = fh.read()
    return out


def vendor_library(lib: Library, vendor_dir: Path, workdir: Path, npm: str) -> dict[str, object]:
    """Fetch, extract and write one library; return its manifest entry."""
    tarball, info = npm_pack(lib, workdir, npm)
    wanted = [*lib.files, *lib.licenses, *lib.optional_notices, "package.json"]
    contents = read_members(tarball, wanted)

    missing = [p for p in (*lib.files, *lib.licenses) if contents.get(p) is None]
    if missing:
        raise VendorError(f"{lib.package}@{lib.version}: not in tarball: {', '.join(missing)}")

    spdx: str | None = None
    raw_pkg = contents.get("package.json")
    if raw_pkg is not None:
        pkg = json.loads(raw_pkg)
        if pkg.get("name") != lib.package or pkg.get("version") != lib.version:
            raise VendorError(f"{tarball.name}: package.json does not match the pin")
        lic = pkg.get("license")
        spdx = lic if isinstance(lic, str) else None

    notices = [n for n in lib.optional_notices if contents.get(n) is not None]
    selected: dict[str, bytes] = {}
    for member in lib.files:
        dest = lib.dest_for(member)
        safe_relpath(dest)
        selected[dest] = contents[member]  # type: ignore[assignment]
    for member in (*lib.licenses, *notices):
        safe_relpath(member)
        selected[member] = contents[member]  # type: ignore[assignment]

    lib_dir = vendor_dir / lib.name
    changed = [
        rel for rel, data in sorted(selected.items()) if write_if_changed(lib_dir / rel, data)
    ]
    stale = sorted(files_under(lib_dir) - set(selected))
    for rel in stale:
        (lib_dir / rel).unlink()
    remove_empty_dirs(lib_dir)

    status = "updated" if changed or stale else "unchanged"
    print(
        f"  {lib.name}: {lib.package}@{lib.version} {status}"
        f" ({len(changed)} written, {len(stale)} removed)"
    )

    return {
        "package": lib.package,
        "version": lib.version,
        "license": spdx,
        "license_files": sorted(lib.licenses),
        "notice_files": sorted(notices),
        "tarball": {"integrity": info.get("integrity"), "shasum": info.get("shasum")},
        "files": {
            rel: {"sha256": sha256_bytes(data), "size": len(data)}
            for rel, data in sorted(selected.items())
        },
    }


def vendor(vendor_dir: Path, *, force: bool, libraries: tuple[Library, ...] = LIBRARIES) -> int:
    vendor_dir.mkdir(parents=True, exist_ok=True)
    try:
        existing = load_manifest(vendor_dir)
    except VendorError as exc:
        print(f"  ! {exc}; re-vendoring everything", file=sys.stderr)
        existing = None
    old_entries: dict[str, object] = {}
    if existing and isinstance(existing.get("libraries"), dict):
        old_entries = dict(existing["libraries"])  # type: ignore[arg-type]

    if not force and check(vendor_dir, libraries).ok:
        print(f"vendor: up to date ({vendor_dir}); use --force to re-fetch")
        return 0

    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm is not on PATH; install Node.js/npm to vendor front-end files")

    entries: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="xietong-vendor-") as tmp:
        for lib in libraries:
            old = old_entries.get(lib.name)
            lib_ok = CheckResult()
            if isinstance(old, dict):
                _check_library(vendor_dir, lib, old, lib_ok)
            if not force and isinstance(old, dict) and lib_ok.ok:
                print(f"  {lib.name}: {lib.package}@{lib.version} unchanged")
                entries[lib.name] = old
                continue
            entries[lib.name] = vendor_library(lib, vendor_dir, Path(tmp), npm)

    # Drop library folders that are no longer pinned.
    for child in sorted(vendor_dir.iterdir()):
        if child.is_dir() and child.name not in entries:
            print(f"  {child.name}: no longer pinned, removing")
            shutil.rmtree(child)

    manifest: dict[str, object] = {
        "format": MANIFEST_FORMAT,
        "generated_by": "scripts/vendor_frontend.py",
        "note": "Verify with: python scripts/vendor_frontend.py --check",
        "libraries": entries,
    }
    write_if_changed(vendor_dir / MANIFEST_NAME, dump_manifest(manifest))

    result = check(vendor_dir, libraries)
    if not result.ok:
        for problem in result.problems:
            print(f"  ! {problem}", file=sys.stderr)
        raise VendorError("vendored tree does not verify after writing")
    total = sum(
        meta["size"]
        for entry in entries.values()
        for meta in entry["files"].values()  # type: ignore[index, union-attr]
    )
    print(f"vendor: done, {total / 1024:.1f} KiB in {vendor_dir}")
    return 0


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="verify vendored files against MANIFEST.json (no network); exit 1 on mismatch",
    )
    mode.add_argument("--force", action="store_true", help="re-fetch every library")
    parser.add_argument(
        "--vendor-dir",
        type=Path,
        default=DEFAULT_VENDOR_DIR,
        help=f"target folder (default: {DEFAULT_VENDOR_DIR.relative_to(REPO_ROOT)})",
    )
    args = parser.parse_args(argv)
    vendor_dir: Path = args.vendor_dir

    if args.check:
        result = check(vendor_dir)
        if result.ok:
            print(f"vendor check: OK ({len(LIBRARIES)} libraries)")
            return 0
        for problem in result.problems:
            print(f"vendor check: {problem}", file=sys.stderr)
        print(f"vendor check: FAILED ({len(result.problems)} problem(s))", file=sys.stderr)
        return 1

    try:
        return vendor(vendor_dir, force=args.force)
    except VendorError as exc:
        print(f"vendor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
