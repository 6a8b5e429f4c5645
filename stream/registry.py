"""Things built by name (face detectors, AU estimators): one registry, as timm and torchvision keep one.

A builder is registered under a name. ``build`` checks the name and every option against the builder's
signature before calling it, so a misspelt name or option fails with the valid ones listed instead of
being silently ignored. An option given as None means "not set" (the unset fields of ``AnalysisConfig``)
and is dropped when the builder does not take it; any other value for an option the builder does not
take is an error.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from stream.errors import ConfigError

T = TypeVar("T")
B = TypeVar("B", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Builders of one kind of thing, by name.

    ``kind`` names the thing in messages ("face detector"); ``modules`` maps each built-in name to the
    module that registers its builder. They are imported on first use, so that importing the registry
    imports no model code: building one thing imports only its module (the default detector and
    estimator run without torch; importing the others costs seconds of start-up), listing the names
    imports them all.
    """

    def __init__(self, kind: str, modules: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}
        self._modules = dict(modules or {})
        self._loaded = not self._modules

    def register(self, name: str) -> Callable[[B], B]:
        """Decorator: ``builder`` builds the thing called ``name`` (and keeps its own type for direct callers)."""

        def wrap(builder: B) -> B:
            self._builders[name] = builder
            return builder

        return wrap

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._builders)

    def options(self, name: str) -> list[str]:
        """The options the builder of ``name`` takes (empty when it takes any, through ``**kwargs``)."""
        params = inspect.signature(self._builder(name)).parameters.values()
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def build(self, name: str, **options: Any) -> T:
        """The thing called ``name`` built with ``options``; ``ConfigError`` for an unknown name or option."""
        builder = self._builder(name)
        params = inspect.signature(builder).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            valid = self.options(name)
            options = {k: v for k, v in options.items() if k in valid or v is not None}
            unknown = sorted(set(options) - set(valid))
            if unknown:
                raise ConfigError(
                    f"{self.kind} {name!r} has no option {', '.join(map(repr, unknown))}; "
                    f"its options are {', '.join(valid) or 'none'}"
                )
        return builder(**options)

    def _builder(self, name: str) -> Callable[..., T]:
        if name not in self._builders and name in self._modules:
            importlib.import_module(self._modules[name])
        if name not in self._builders:
            self._ensure_loaded()
        if name not in self._builders:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(sorted(self._builders))}")
        return self._builders[name]

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the modules imported register into this registry
            for module in self._modules.values():
                importlib.import_module(module)
