"""A pinned copy of Mermaid for the documentation site, fetched once from npm.

The site's diagrams are Mermaid source that Mermaid draws in the reader's browser. Left
to itself, mkdocs-material would load Mermaid from a CDN, so offline every diagram would
show as raw text. Instead the docs build (`docs/hooks.py`) serves this copy from the site
itself: [`ensure`][] puts the pinned version's `dist/mermaid.min.js` (and its licence) in
`docs/generated/` (ignored by git), downloading the package with `npm pack` the first time
and checking it against the pinned integrity hash. When it cannot, it raises
[`MermaidUnavailable`][] saying why and what to do, so a build never quietly ships
diagrams that cannot render.

Run it by hand with `python docs/_vendor_mermaid.py` (`make docs` does so first).
Update the pin with `npm view mermaid@11 version dist.integrity`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["INTEGRITY", "VERSION", "MermaidUnavailable", "ensure", "is_current"]

VERSION = "11.17.2"
"""The Mermaid release the site uses (mkdocs-material 9 expects Mermaid 11)."""
INTEGRITY = (
    "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oE"
    "K7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
"""The npm registry's integrity hash of `mermaid-VERSION.tgz` (Subresource Integrity form)."""

SCRIPT = "mermaid.min.js"
LICENCE = "mermaid.LICENSE.txt"
_STAMP = "mermaid.version"
GENERATED = Path(__file__).parent / "generated"
"""Where the copy goes: `docs/generated/`, next to the other generated files."""


class MermaidUnavailable(RuntimeError):
    """Mermaid could not be fetched: the message says why and how to fix it."""


def is_current(generated: Path = GENERATED) -> bool:
    """Whether `generated` holds the pinned version's script and licence."""
    stamp = generated / _STAMP
    return (
        (generated / SCRIPT).is_file()
        and (generated / LICENCE).is_file()
        and stamp.is_file()
        and stamp.read_text(encoding="utf-8").strip() == VERSION
    )


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _pack(npm: str, folder: Path) -> Path:
    """Download `mermaid@VERSION` into `folder` with `npm pack`; return the tarball."""
    try:
        done = subprocess.run(
            [npm, "pack", "--json", f"mermaid@{VERSION}"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MermaidUnavailable(f"`npm pack mermaid@{VERSION}` could not run: {error}") from error
    if done.returncode:
        raise MermaidUnavailable(
            f"`npm pack mermaid@{VERSION}` failed (exit {done.returncode}); is the npm registry "
            f"reachable?\n{done.stderr.strip()[-2000:]}"
        )
    try:
        filename = str(json.loads(done.stdout)[0]["filename"])
    except (ValueError, LookupError, TypeError):
        filename = f"mermaid-{VERSION}.tgz"
    return folder / filename


def ensure(generated: Path = GENERATED, *, npm: str | None = None) -> Path:
    """Make sure `generated` holds the pinned Mermaid; fetch it from npm if not.

    Args:
        generated: the folder to put it in.
        npm: the npm command (default: `npm` on the `PATH`).

    Returns:
        The path of `mermaid.min.js`.

    Raises:
        MermaidUnavailable: npm is missing or failed, or the package is not the pinned one.
    """
    if is_current(generated):
        return generated / SCRIPT
    npm = npm or shutil.which("npm")
    if npm is None:
        raise MermaidUnavailable(
            f"the docs' diagrams need Mermaid {VERSION}, which is fetched once with npm, and "
            "npm is not installed. Install Node.js and npm (`apt-get install npm`, or "
            "https://nodejs.org) and build again, or run `python docs/_vendor_mermaid.py` "
            "where npm is available and copy docs/generated/mermaid.* here."
        )
    with tempfile.TemporaryDirectory(prefix="exegraph-mermaid-") as tmp:
        tarball = _pack(npm, Path(tmp))
        if not tarball.is_file():
            raise MermaidUnavailable(f"`npm pack mermaid@{VERSION}` made no {tarball.name}")
        found = _integrity(tarball)
        if found != INTEGRITY:
            raise MermaidUnavailable(
                f"mermaid@{VERSION} from npm is not the pinned package: its integrity is "
                f"{found}, expected {INTEGRITY}"
            )
        generated.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for member, name in (
                ("package/dist/mermaid.min.js", SCRIPT),
                ("package/LICENSE", LICENCE),
            ):
                source = archive.extractfile(member)
                if source is None:  # pragma: no cover - the pinned package has both files
                    raise MermaidUnavailable(f"mermaid@{VERSION} has no {member}")
                partial = generated / f"{name}.partial"
                partial.write_bytes(source.read())
                partial.replace(generated / name)
    (generated / _STAMP).write_text(f"{VERSION}\n", encoding="utf-8")
    return generated / SCRIPT


def main() -> int:
    """Fetch the pinned Mermaid if needed; say what was done."""
    was_current = is_current()
    try:
        path = ensure()
    except MermaidUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    where = path.relative_to(Path(__file__).parent.parent)
    print(f"{where}: mermaid {VERSION}{' (already there)' if was_current else ', from npm'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
