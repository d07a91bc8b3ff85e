"""systemd integration: sd_notify, the watchdog policy, journald logging."""
