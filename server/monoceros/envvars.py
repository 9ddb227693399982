"""Where an option's value comes from when the command line does not give it: the environment,
read in this order (command line > MONOCEROS_* > UVICORN_* > uvicorn's older names > default),
so that a container configured for uvicorn keeps working and is told what it relies on."""

from __future__ import annotations

import os

import click
from click.core import ParameterSource


def uvicorn_variables_read(ctx: click.Context) -> list[str]:
    """A startup line for each UVICORN_* variable an option was taken from."""
    lines = []
    for param in ctx.command.params:
        if (
            param.name is None
            or ctx.get_parameter_source(param.name) != ParameterSource.ENVIRONMENT
        ):
            continue
        envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
        used = next((name for name in envvars if os.environ.get(name)), None)
        if used is not None and used.startswith("UVICORN_"):
            lines.append(f"Read {used} (uvicorn's name for {envvars[0]})")
    return lines


# Options of ours that uvicorn does not have: no UVICORN_* variable for them.
OUR_OPTIONS = frozenset(
    {
        *("limit_request_line", "limit_request_fields", "limit_request_header_size"),
        *("limit_request_body", "timeout_request_header", "forwarded_headers"),
        *("proxy_forwarded_host", "proxy_forwarded_port", "proxy_forwarded_prefix"),
        *("reuse_port", "limit_max_rss", "log_format", "metrics", "metrics_host"),
        *("metrics_port", "request_id_header", "shutdown_delay", "proxy_protocol"),
        "http2_max_concurrent_streams",
        *("log_schema", "access_log_exclude", "metrics_duration_buckets", "trace_id_generate"),
        *("timeout_request_body", "timeout_send", "loop_block_threshold"),
    }
)
# Variables uvicorn reads after its own UVICORN_* one.
LEGACY_VARIABLES = {"workers": "WEB_CONCURRENCY", "forwarded_allow_ips": "FORWARDED_ALLOW_IPS"}


def assign_envvars(command: click.Command) -> None:
    """Give each option its environment variables, in the order they are read, and have
    `--help` name them (set here once rather than on every option). --header's is
    MONOCEROS_HEADER, like the flag."""
    for param in command.params:
        if not isinstance(param, click.Option) or not param.allow_from_autoenv or not param.name:
            continue
        ours = "HEADER" if param.name == "headers" else param.name.upper()
        envvars = [f"MONOCEROS_{ours}"]
        if param.name not in OUR_OPTIONS:
            envvars.append(f"UVICORN_{param.name.upper()}")
        if param.name in LEGACY_VARIABLES:
            envvars.append(LEGACY_VARIABLES[param.name])
        param.envvar = envvars
        param.show_envvar = True
