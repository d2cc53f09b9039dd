"""Exceptions raised by vortexdb, one class per error of the Rust library.

Every exception derives from :class:`Error` and from the built-in class a Python user
would catch (``ValueError`` for bad input, ``LookupError`` for an unknown name,
``FileExistsError``, ``OSError``, ``KeyboardInterrupt``). Each carries the
library's structured fields as attributes (``path``, ``name``, ``sample``, ``known``,
``genes``, ``suggestions``, ``pid``, ...) and ``layer`` (``input``, ``store``,
``model``, ``index``).
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every vortexdb error."""

    layer: str = "input"


class BadInput(Error, ValueError):
    """Input the call cannot use: a bad argument, file, array or combination."""


class InvalidArgument(BadInput):
    """An argument out of range or malformed; ``name`` says which."""


class BadFile(BadInput):
    """A file that cannot be used; ``path`` names it."""


class DimensionMismatch(BadInput):
    """Vectors whose dimension (``found``) is not the collection's (``expected``)."""


class NothingSelected(BadInput):
    """A filter left nothing to work on; ``stage`` says which."""


class UnknownSample(BadInput, LookupError):
    """A sample the store does not hold; ``known`` lists the ones it does."""


class UnknownGenes(BadInput, LookupError):
    """Genes outside the panel searched; ``suggestions`` maps each to close names."""


class OutputExists(Error, FileExistsError):
    """An output location exists and is left alone; ``path`` names it."""


class RegistrationFailed(BadInput):
    """A registration found no trustworthy map: ``score`` and ``overlap`` say how well
    the best one matched, ``moving`` and ``fixed`` name the images (or volume)."""


class Interrupted(Error, KeyboardInterrupt):
    """A long call stopped by Ctrl-C after a durable batch; calling it again resumes."""


class ModelError(Error):
    """A problem with the models of a store."""


class UnknownModel(ModelError, LookupError):
    """A model name the store does not hold."""


class NoModel(ModelError):
    """The store holds no model (add one with ``Store.add_model``)."""


class AmbiguousModel(ModelError):
    """Several models and none named."""


class StoreError(Error):
    """A problem with the store itself."""


class UnknownCollection(StoreError, LookupError):
    """A collection the store does not hold; ``known`` lists the ones it does."""


class NotAStore(StoreError):
    """The directory is not a vortexdb store."""


class StoreLocked(StoreError):
    """Another process (``pid``) holds the store open for writing."""


class Corrupted(StoreError):
    """Damaged store data (run ``vortexdb check`` / restore a backup)."""


class VersionError(StoreError):
    """A store written by an unsupported format version."""


class ReadOnly(StoreError):
    """A write to a store opened read-only."""


class StoreClosed(StoreError):
    """A call on a store after ``close()``."""


class DatabaseError(StoreError):
    """The embedded database failed."""


class StoreIOError(StoreError, OSError):
    """A file could not be read or written; ``path`` names it."""


class RuntimeFailure(Error):
    """ONNX Runtime could not run a model."""


class MissingRuntime(RuntimeFailure):
    """The ONNX Runtime library was not found (install ``onnxruntime``)."""


class DeviceError(RuntimeFailure):
    """The execution provider asked for (e.g. CUDA) is not available."""


class InferenceError(RuntimeFailure):
    """A model failed on valid input."""


class ArchiveError(Error):
    """A problem with an archive of shards: its catalog, a shard (``shard`` names it)
    or a shard's model."""


class ClusterUnreachable(ArchiveError, ConnectionError):
    """The Ray cluster at ``address`` could not be reached."""


class GraphError(Error):
    """An HNSW index invariant failed (a bug: please report it)."""


__all__ = [name for name, v in dict(globals()).items() if isinstance(v, type) and issubclass(v, Error)]
