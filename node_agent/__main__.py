"""`phonghop-agent`: the room agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from node_agent.config import ConfigError, load_config
from node_agent.control import ControlClient
from node_agent.media import MediaManager
from node_agent.room import Room
from node_agent.testsource import TestSource
from phonghop.logs import setup_logging

log = logging.getLogger("node_agent")


async def _run(config_path: Path) -> int:
    config = load_config(config_path)
    setup_logging(config.log_level, "agent", config.room)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    room = Room(config.room)
    log.info("agent for room %s starting; coordinator %s", config.room, config.coordinator_url)
    control = ControlClient(config, config_path, room)
    tasks = [asyncio.create_task(control.run(stop), name="control")]
    if config.media.enabled:
        ts = config.test_source
        control.source = TestSource(config.room, ts.width, ts.height, ts.fps, ts.bitrate)
        control.source.set_talking(ts.talking)
        control.media = MediaManager(room, control.source, config.media.decode, control.send)
        tasks.append(asyncio.create_task(control.media.run(stop), name="media"))
    if config.local_api_port:
        from node_agent.local_api import local_server  # FastAPI costs a third of a second to import

        server, stop_server = local_server(control, config.local_api_port)
        tasks.append(asyncio.create_task(server.serve(), name="local-api"))
        stop_task = asyncio.create_task(stop.wait())
        stop_task.add_done_callback(lambda _: stop_server())
    await asyncio.gather(*tasks)
    log.info("agent stopped")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phonghop-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the coordinator and serve the room")
    run.add_argument("--config", type=Path, default=Path("/etc/phonghop/agent.toml"))
    args = parser.parse_args(argv)
    try:
        code = asyncio.run(_run(args.config))
    except ConfigError as exc:
        print(f"phonghop-agent: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
