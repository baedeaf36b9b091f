"""The operator's web pages (Vietnamese, server-rendered); ``site`` puts them on the app."""
