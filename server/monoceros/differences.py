"""uvicorn's options that monoceros accepts but serves differently: one line each, logged at
startup, so that a command copied from uvicorn runs and says what it gets instead
(docs/migrating.md lists them all, with the reasons)."""

from __future__ import annotations

from monoceros.config import Config


def startup_notes(config: Config) -> list[str]:
    """What the operator should know about how `config` differs from the same uvicorn command."""
    notes = []
    if config.http in ("h11", "zttp"):
        notes.append(
            f"--http {config.http}: monoceros parses HTTP/1.1 with httptools, its only "
            "implementation; serving with httptools"
        )
    if config.loop == "zuvloop":
        notes.append("--loop zuvloop: monoceros runs uvloop where uvicorn would run zuvloop")
    size = config.h11_max_incomplete_event_size
    if size is not None:
        taken = config.limits.max_header_bytes == size
        notes.append(
            f"--h11-max-incomplete-event-size {size}: "
            + (
                f"taken as --limit-request-header-size {size} (the request head limit)"
                if taken
                else f"ignored for --limit-request-header-size {config.limits.max_header_bytes}"
            )
        )
    if config.reload.enabled and config.workers > 1:
        notes.append(f"--workers {config.workers} is ignored with --reload: one server process")
    reload = config.reload
    if not reload.enabled and (reload.dirs or reload.includes or reload.excludes):
        notes.append(
            "--reload-dir, --reload-include and --reload-exclude do nothing without --reload"
        )
    if config.observe.use_colors and config.observe.log_format == "json":
        notes.append("--use-colors: JSON lines have no colours; they colour --log-format console")
    return notes
