"""The response cache (``Config.cache``): identical requests answered once.

=====================================  ===========================================================
``memory://``                          this process only; least recently used evicted first
``sqlite:///cache.db``                 a file: survives restarts, shared by processes on one host
``redis://host:6379/0`` (``rediss://``)  shared by every replica; needs ``llmdispatcher[redis]``
=====================================  ===========================================================

``key.py`` decides what identifies an answer, ``entry.py`` how one is kept and replayed,
``store.py`` the protocol every store implements, ``response_cache.py`` the lookups, the
coalescing of concurrent misses and the writes. ``lifecycle/cached.py`` puts it in the
request's path. Nothing here is imported unless a cache is configured.
"""
