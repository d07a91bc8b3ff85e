"""Check 1: the configuration file is valid; every problem listed with its key."""

from __future__ import annotations

from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import config_fix
from edgecap.doctor.result import CheckResult, failed, passed, warned

CHECK = "config"

_SECRET_NAMES = {
    "token_service_credential": "token-service credential",
    "api_key": "AssemblyAI API key",
    "mqtt_password": "MQTT password",
}


async def check_config(ctx: DoctorContext) -> CheckResult:
    cfg = ctx.cfg
    sources = [
        f"{_SECRET_NAMES.get(name, name)} from {source}"
        for name, source in cfg.secrets.sources.items()
    ]
    notes = [n for n in (cfg.credentials_note,) if n]
    if cfg.valid:
        assert cfg.auth is not None
        assert cfg.streaming is not None
        assert cfg.mqtt is not None
        detail = (
            f"{cfg.path} is valid (device_id={cfg.device_id}, auth={cfg.auth.mode}, "
            f"streaming={cfg.streaming.url}, mqtt={cfg.mqtt.host}:{cfg.mqtt.port})"
        )
        if sources:
            detail += "; " + ", ".join(sources)
        if notes:
            detail += "; " + "; ".join(notes)
        data = {"path": str(cfg.path), "secrets": sorted(cfg.secrets.sources)}
        if cfg.secrets.warnings:
            return warned(
                CHECK,
                detail + "; but " + "; ".join(cfg.secrets.warnings),
                "make each secret file readable by its owner only (`chmod 600 FILE`), or "
                "hand it to the service with systemd LoadCredential=",
                **data,
            )
        if cfg.warnings:
            return warned(
                CHECK,
                detail + "; but " + "; ".join(cfg.warnings),
                "each warning names its key: remove what the configured mode or model does "
                "not use, or fix the value (`edgecap check-config` lists them)",
                **data,
            )
        return passed(CHECK, detail, **data)
    lines = [f"{cfg.path}: {len(cfg.problems)} problem(s):"]
    lines.extend(f"- {problem}" for problem in cfg.problems)
    lines.extend(notes)
    return failed(
        CHECK,
        "\n".join(lines),
        config_fix(cfg.problems, str(cfg.path)),
        path=str(cfg.path),
        problems=list(cfg.problems),
    )
