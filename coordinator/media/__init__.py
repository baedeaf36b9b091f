"""The media router: forwards each room's encoded RTP to the rooms that should see and hear it."""
