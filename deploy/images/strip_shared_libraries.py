"""Strip debugging symbols from the large shared libraries of a site-packages folder,
keeping only the stripped files that still load.

Usage (in an image's build stage, with binutils): python3 strip_shared_libraries.py DIR

`strip --strip-unneeded` is what Debian does to its packages, but some wheels' libraries
were rewritten by patchelf (auditwheel's vendored `*.libs`), and binutils' strip can turn
those into files the loader refuses ("ELF load command address/offset not page-aligned").
So each stripped file is loaded (dlopen, in a fresh process) and put back as it was if it
fails. Only files over 1 MB are tried; prints the bytes saved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MIN_SIZE = 1_000_000
LOAD = "import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)"


def main(root: Path) -> int:
    saved = kept = restored = 0
    root = root.resolve()
    for path in sorted(root.rglob("*.so*")):
        if path.is_symlink() or not path.is_file() or path.stat().st_size < MIN_SIZE:
            continue
        backup = path.with_name(path.name + ".unstripped")
        shutil.copy2(path, backup)
        before = path.stat().st_size
        stripped = subprocess.run(["strip", "--strip-unneeded", str(path)],
                                  capture_output=True).returncode == 0
        loads = stripped and subprocess.run(
            [sys.executable, "-c", LOAD, str(path)], capture_output=True,
            cwd=path.parent, env={**os.environ, "PYTHONPATH": str(root)}).returncode == 0
        if loads:
            saved += before - path.stat().st_size
            kept += 1
            backup.unlink()
        else:
            os.replace(backup, path)
            restored += 1
    print(f"strip: {kept} libraries stripped, {restored} left as they were, "
          f"{saved / 1e6:.0f} MB saved")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
