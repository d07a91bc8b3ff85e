"""The command line of an edgecap helper process that touches ALSA: isolated Python
(`-I -S`: no site-packages, no environment) with only edgecap and alsaaudio on its path,
killed by the kernel if its parent dies (`setpriv --pdeathsig`, when util-linux has it)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import edgecap

# argv: <edgecap root> <alsaaudio dir> <module> <module's args...>
BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[1:3]; "
    "sys.exit(__import__(sys.argv[3], fromlist=['main']).main(sys.argv[4:]))"
)


def isolated_python(module: str, *args: str) -> list[str]:
    """`python -I -S -c BOOTSTRAP ... module args`: `module.main(args)` is the program."""
    root = str(Path(edgecap.__file__).resolve().parent.parent)
    spec = importlib.util.find_spec("alsaaudio")
    alsa_dir = str(Path(spec.origin).parent) if spec is not None and spec.origin else root
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    return [*prefix, sys.executable, "-I", "-S", "-c", BOOTSTRAP, root, alsa_dir, module, *args]


__all__ = ["BOOTSTRAP", "isolated_python"]
