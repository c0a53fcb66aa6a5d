"""The one reader of environment variables for settings and the server's command line.

Booleans accept 1, true, yes or on (any case); anything else is off; unset or empty means
the default. Each reader takes an optional mapping, so the server can read the same way
from the environment it was handed.
"""

import os
from collections.abc import Mapping

TRUE = frozenset({"1", "true", "yes", "on"})


def env_str(name: str, default: str = "", env: Mapping[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get(name, default)


def env_bool(name: str, default: bool = False, env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in TRUE


def env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    value = (os.environ if env is None else env).get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str], env: Mapping[str, str] | None = None) -> list[str]:
    value = (os.environ if env is None else env).get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]
