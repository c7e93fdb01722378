"""``python -m warren.store.writer_main``: the store's writer process (sqlite_writer.py).

Started by :class:`~warren.store.sqlite.SqliteStore`, not by hand. A module of its
own, imported by nothing, so ``-m`` does not run a module the package has already
imported.
"""

import sys

from warren.store.sqlite_writer import main

if __name__ == "__main__":
    sys.exit(main())
