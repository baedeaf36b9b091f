"""`phonghop-coordinator`: run the coordinator with settings from PHONGHOP_* variables."""

from __future__ import annotations

import argparse
import logging
import sys

from coordinator.settings import Settings


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["user"]:
        from coordinator.web.cli import main as user_main

        raise SystemExit(user_main(argv[1:]))
    if argv[:1] == ["backup"]:
        from coordinator.backup.cli import main as backup_main

        raise SystemExit(backup_main(argv[1:]))
    # Imported here so that `user` and `backup` commands start without the media stack.
    import uvicorn

    from coordinator.app import create_app
    from phonghop.logs import setup_logging

    parser = argparse.ArgumentParser(prog="phonghop-coordinator", description=__doc__)
    parser.add_argument("--host", help="listen address (default from PHONGHOP_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default from PHONGHOP_PORT)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    setup_logging(settings.log_level, "coordinator")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        loop="asyncio",  # uvicorn would take uvloop whenever installed; the media path is measured on asyncio's
        ws_max_size=4 * settings.max_message_bytes,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
    logging.shutdown()


if __name__ == "__main__":
    main()
