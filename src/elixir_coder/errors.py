"""One exception type for every user-facing failure, so the CLIs can print one clear line and exit."""


class ElixirCoderError(Exception):
    """A problem with the user's input (file, line, config key) and what to do about it."""


class DataError(ElixirCoderError):
    """Bad corpus records or a bad tokenized dataset on disk."""


class ConfigError(ElixirCoderError):
    """A config key with a value that cannot work (the message names the key)."""
