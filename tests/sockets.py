"""Test servers' shared part: accept connections until the listening socket closes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def accept_forever(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Hand each connection to `handle` on a thread of its own, from a thread that ends with `listener`."""

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
