"""Exceptions raised for bad input. Every message names the offending file or config key and says what to do."""

from __future__ import annotations


class DepthXAIError(Exception):
    """Base class: an error the user can fix (bad file, bad config, missing download)."""


class ConfigError(DepthXAIError):
    """The configuration fails the schema or a semantic check; the message names the key."""


class DataError(DepthXAIError):
    """An input file (image, depth map, index, archive) is missing, corrupt or of the wrong format."""


class CheckpointError(DepthXAIError):
    """A checkpoint is missing, unreadable, unsafe, or does not fit the model."""


class DownloadError(DepthXAIError):
    """A download failed or its hash did not match; the message says where to place the file by hand."""


class TrainingError(DepthXAIError):
    """A training run diverged (non-finite loss or parameters): a setting must change."""
