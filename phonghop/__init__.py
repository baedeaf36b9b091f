"""Shared pieces of phonghop: the control protocol, room identity and the demo."""

__version__ = "0.1.0"
