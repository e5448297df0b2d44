"""The child process of a dashboard replay: ``python -m llmdispatcher.gateway.ui.replay_worker``.

Reads ``(proposal, baseline, window)`` pickled on stdin (sent by ``replay_runner``, its parent,
over a pipe only the two share), runs ``llmdispatcher.replay.replay`` on them, and answers on
stdout: the report as JSON (exit 0), or a message for the user when the replay refuses or the
config cannot be replayed (exit ``REFUSED``). Anything else is a crash: its traceback goes to
stderr, which the gateway logs.
"""

from __future__ import annotations

import json
import pickle
import sys

REFUSED = 3


def main() -> int:
    from ...errors import DispatcherError
    from ...replay import replay

    # Pickle: Config values as they are, from the parent that started us, over our own pipe.
    proposal, baseline, window = pickle.load(sys.stdin.buffer)
    try:
        report = replay(proposal, window, baseline=baseline)
    except DispatcherError as exc:  # ReplayRefused, a config that cannot run, a stalled replay
        sys.stdout.write(str(exc))
        return REFUSED
    sys.stdout.write(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
