#!/usr/bin/env python3
"""The lab's apt proxy: lab hosts have no route out, so apt on them goes through this, on the bridge address.

Why not apt-cacher-ng: on this machine's sandboxed network stack it fails at start ("Error resolving
address for binding") for every bind address, so the lab ships this small stand-in. It is an HTTP
forward proxy limited to the Debian archive hosts; package files (``/pool/…``, immutable by name) are
kept in a cache folder shared by all labs on the machine, index files are passed through unchanged.

Usage: ``apt_proxy.py --bind 10.213.1.1 --cache /var/cache/phonghop-lab/apt --port-file FILE``
(it listens on a free port and writes that port to FILE once it is listening).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ALLOWED_HOSTS = {"deb.debian.org", "security.debian.org"}
FORWARDED_HEADERS = ("If-Modified-Since", "If-None-Match", "Range", "Accept")
CACHE: Path = Path("/var/cache/phonghop-lab/apt")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in ALLOWED_HOSTS or ".." in url.path:
            self.send_error(403, f"only the Debian archive is served here, not {self.path}")
            return
        cached = CACHE / url.hostname / url.path.lstrip("/")
        immutable = "/pool/" in url.path and not url.query
        if immutable and cached.is_file():
            self.send_file(cached)
            return
        request = urllib.request.Request(self.path)
        for name in FORWARDED_HEADERS:
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            upstream = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as error:
            body = error.read()
            self.send_response(error.code)
            for name, value in error.headers.items():
                if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        except OSError as error:
            self.send_error(502, f"upstream unreachable: {error}")
            return
        with upstream:
            if immutable and upstream.status == 200:
                cached.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as tmp:
                    shutil.copyfileobj(upstream, tmp)
                os.replace(tmp.name, cached)
                self.send_file(cached)
                return
            self.send_response(upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in {"transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(upstream, self.wfile)

    def send_file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.debian.binary-package")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with path.open("rb") as f:
            shutil.copyfileobj(f, self.wfile)


def main() -> None:
    global CACHE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    CACHE = Path(args.cache)
    CACHE.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.bind, 0), Handler)
    server.daemon_threads = True
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
