"""``python -m conveyor.tools.datasets`` = ``make datasets`` (see :mod:`conveyor.tools.datasets.build`)."""
from conveyor.tools.datasets.build import main

if __name__ == "__main__":
    raise SystemExit(main())
