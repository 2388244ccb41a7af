"""``python -m conveyor.tools.k8s generate|validate``: see :mod:`conveyor.tools.k8s`."""
from __future__ import annotations

import sys

from conveyor.tools.k8s import K8S_DIR, generate


def main(argv: list[str]) -> int:
    """Run one subcommand; return the exit status."""
    if argv[:1] == ["generate"]:
        for path in generate():
            print(f"wrote {path.relative_to(K8S_DIR.parent)}")
        return 0
    if argv[:1] == ["validate"]:
        from conveyor.tools.k8s.validate import main as validate

        return validate(argv[1:])
    print("usage: python -m conveyor.tools.k8s generate | validate [--overlay NAME ...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
