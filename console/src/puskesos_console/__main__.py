"""``python -m puskesos_console`` / ``puskesos-console``: serves the console until SIGTERM."""

from __future__ import annotations

import signal
from contextlib import suppress
from types import FrameType

import uvicorn
from puskesos_shared.logging import configure_logging
from puskesos_shared.service import IdleFriendlyServer

from .app import create_app
from .settings import ConsoleSettings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # uvicorn re-raises SIGTERM after its graceful stop: a graceful stop is a success


def main() -> None:
    settings = ConsoleSettings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.port, log_config=None, access_log=False,
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=5)
    server = IdleFriendlyServer(config)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
