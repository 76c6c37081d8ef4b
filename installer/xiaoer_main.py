"""The bundle's entry point.

``xiaoer`` opens the window; ``xiaoer draft TEXT``, ``xiaoer gui --smoke`` and every other command
work as in a source install (this is ``app.cli:main``). A frozen bundle has no Python interpreter:
``sys.executable`` is this program. The app starts its long jobs as ``sys.executable -m MODULE``
(``-m app evolve`` from the evolution panel, ``-m app.evolve.train``, ``-m llama_cpp.server`` for the
local teacher), so ``xiaoer -m MODULE ARGS…`` runs that module here the way ``python -m`` would.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys


def main() -> int:
    multiprocessing.freeze_support()
    if len(sys.argv) >= 3 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    from app.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
