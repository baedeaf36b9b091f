"""Every reach into aiortc's private parts, in one package (aiortc, aioice and pylibsrtp pinned).

``tracks`` holds the small hooks a room's agent uses; ``forwarding`` is the
router's data path, which keeps aiortc for ICE, DTLS and the SDP but moves
packets itself. ``tests/test_aiortc_glue.py`` checks every private name used
here against the pinned versions, and importing the package with another
aiortc fails loudly.
"""

from importlib.metadata import version

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
for _package, _wanted in PINNED.items():
    if version(_package) != _wanted:
        raise ImportError(f"phonghop.aiortc_glue is written for {_package} {_wanted}, found {version(_package)}")
