"""Turn `module:attribute` into the ASGI app, with one clear line for every way it can fail."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

from monoceros.errors import StartupError
from monoceros.interface import detect, takes_no_arguments

logger = logging.getLogger("monoceros.error")


def load_app(target: str | Any, *, factory: bool = False, app_dir: str = ".") -> Any:
    """Import (and with `factory`, call) the app named by `target`: the object as found, for
    interface.adapt to serve. A callable that takes no arguments, given without `factory`, is
    called as one too, as uvicorn does, with a warning."""
    if isinstance(target, str):
        obj = import_from_string(target, app_dir=app_dir)
    else:
        obj, target = target, getattr(target, "__qualname__", repr(target))
    if not factory and detect(obj) is None and takes_no_arguments(obj):
        logger.warning(
            'The app "%s" takes no arguments: calling it as an app factory (pass --factory to '
            "say so and silence this)",
            target,
        )
        factory = True
    if factory:
        if not callable(obj):
            raise StartupError(f'Factory "{target}" is not callable.')
        try:
            obj = obj()
        except Exception as exc:
            raise StartupError(f'Error calling factory "{target}": {_describe(exc)}') from exc
    if not callable(obj):
        raise StartupError(f'ASGI app "{target}" is not callable (it is {type(obj).__name__}).')
    return obj


def make_importable(app_dir: str) -> None:
    """Put --app-dir first on sys.path, once: the app, and what --log-config names, import
    from there."""
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)


def import_from_string(target: str, *, app_dir: str = ".") -> Any:
    module_name, sep, attribute_path = target.partition(":")
    if not sep or not module_name or not attribute_path:
        raise StartupError(f'Import string "{target}" must be in format "<module>:<attribute>".')
    make_importable(app_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise StartupError(f'Could not import module "{module_name}".') from exc
        raise StartupError(f'Error importing module "{module_name}": {_describe(exc)}') from exc
    except Exception as exc:
        raise StartupError(f'Error importing module "{module_name}": {_describe(exc)}') from exc
    obj: Any = module
    for part in attribute_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise StartupError(
                f'Attribute "{attribute_path}" not found in module "{module_name}".'
            ) from None
    return obj


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
