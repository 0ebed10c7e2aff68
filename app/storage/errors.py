"""What storage can tell its callers, free of SQL driver and HTTP detail."""


class StorageError(Exception):
    """Base of storage failures."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or is locked past the busy timeout; retrying may work."""
