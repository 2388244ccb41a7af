"""``python -m conveyor.streams.drift [options]``: the drift worker (see :func:`conveyor.streams.drift.app.main`)."""
from conveyor.streams.drift.app import main

if __name__ == "__main__":
    main()
