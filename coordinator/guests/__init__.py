"""Guests: people who join a meeting from a browser with an invitation, not from a provisioned room."""
