"""Another process holding a run folder's lock."""

# `python -c HOLD FOLDER` takes the lock of FOLDER, prints "held", and keeps it until killed.
HOLD = "import sys, time; from hubevo.run.lock import run_lock\nwith run_lock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(600)"
