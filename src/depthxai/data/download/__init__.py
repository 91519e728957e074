"""Downloads that verify, resume and work offline, and archive extraction that cannot escape its folder.

One job per module:

* :mod:`~depthxai.data.download.verify`: expected sizes and hashes (``sha256``, ``md5``, ``git_sha1``), chunked
  digests, the ``.sha256`` record of a download with no pinned hash;
* :mod:`~depthxai.data.download.fetching`: :func:`fetch`, which makes a file a verified copy of a URL from the
  file itself, a mirror folder (``$DEPTHXAI_MIRROR``) or the network (HTTP with resume, Google Drive);
* :mod:`~depthxai.data.download.extraction`: :func:`extract`, safe zip/tar extraction, and its completion markers;
* :mod:`~depthxai.data.download.resource`: :func:`fetch_resource`, one entry of the config's ``downloads`` table
  (fetch, then extract archives), and :func:`check_spec`, its validation.
"""

from __future__ import annotations

from depthxai.data.download.extraction import extract, extraction_marker, is_extracted
from depthxai.data.download.fetching import (
    MAX_RESUMES,
    MIRROR_ENV,
    USER_AGENT,
    fetch,
    resolve_mirror,
)
from depthxai.data.download.resource import (
    DOWNLOAD_KINDS,
    SPEC_FIELDS,
    check_spec,
    fetch_resource,
)
from depthxai.data.download.verify import CHUNK_BYTES, Expected, file_digests

__all__ = [
    "CHUNK_BYTES",
    "DOWNLOAD_KINDS",
    "MAX_RESUMES",
    "MIRROR_ENV",
    "SPEC_FIELDS",
    "USER_AGENT",
    "Expected",
    "check_spec",
    "extract",
    "extraction_marker",
    "fetch",
    "fetch_resource",
    "file_digests",
    "is_extracted",
    "resolve_mirror",
]
