"""``python -m streams.drift [options]``: the drift worker (see :func:`streams.drift.app.main`)."""
from streams.drift.app import main

if __name__ == "__main__":
    main()
