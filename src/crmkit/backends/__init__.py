"""crmkit's storage backends: ``memory``, ``sql`` (SQLite, PostgreSQL) and ``mongo``.

Each registers its URL schemes in the ``crmkit.backends`` entry-point group, exactly as a
third-party backend would.
"""
