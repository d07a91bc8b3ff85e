"""``edgecap doctor``: diagnose the whole chain (config, audio device, token service,
streaming service, MQTT, systemd) in one command.

Each check is a small function returning a :class:`CheckResult` (check, result, detail,
fix). ``edgecap.doctor.runner.run_doctor`` runs them all in order and never stops early;
``edgecap.doctor.loading.load_doctor_config`` loads the configuration the way the checks
need it; ``edgecap.doctor.command.doctor_command`` is the command line. This package
module stays light (no network libraries) so that building the CLI parser is cheap.
"""

from edgecap.doctor.render import render_json, render_table
from edgecap.doctor.result import EX_FAILED, EX_OK, CheckResult, Report, Result

__all__ = [
    "EX_FAILED",
    "EX_OK",
    "CheckResult",
    "Report",
    "Result",
    "render_json",
    "render_table",
]
