"""The room agent: keeps the room connected to the coordinator and does its duty."""
