"""The daemon: wiring from the config, the status it publishes, reload."""
