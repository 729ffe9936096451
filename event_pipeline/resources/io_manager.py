"""The import job's IO manager: pickles on disk, and the same objects in memory for the run.

Every model asset reads the validated archive; with the plain filesystem IO
manager each of them unpickled it again (0.85 s per step for 20k sessions,
most of an import's time). The run executes in one process
(in_process_executor), so outputs are kept in memory for the rest of the
run and read back from disk only when they come from an earlier run, as in
a re-execution from failure. Assets read their ancestors' outputs that are
not input edges (the import chain, ``assets/models.py``) through
:meth:`_RunCachedIOManager.stored_output`, from the same memory and pickles.
Outputs carry no ``path`` metadata: the pickle's location means nothing in the UI.

Pickles are written without pickle's memo ("fast" mode): the memo keeps an
entry for each object of an output (the media plan of 50 000 speakers' rows
holds hundreds of thousands), and our outputs are trees (no cycles) whose
shared references may come back as copies.
"""

import pickle
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dagster as dg
from pydantic import PrivateAttr

from event_pipeline.assets.selection import IMPORT_ASSET_KEYS, require_whole_import

if TYPE_CHECKING:
    from upath import UPath


def _key(asset_key: dg.AssetKey, partition: str | None) -> tuple[str, str | None]:
    return asset_key.to_user_string(), partition


class _RunCachedIOManager(dg.UPathIOManager):
    """Pickles at ``<base_dir>/<asset key path>/<partition>`` (where Dagster's filesystem IO manager puts
    them), and every output of this run kept in memory."""

    extension = ""

    def __init__(self, base_dir: str):
        from upath import UPath

        super().__init__(base_path=UPath(base_dir))
        self._root = UPath(base_dir)
        self._objects: dict[tuple[str, str | None], Any] = {}  # lives as long as this run's resources

    def make_safe_partition_path(self, base_path: "UPath", partition: str) -> "UPath":
        """One path segment under ``base_path`` whatever the partition holds (``/``, ``..``): a valid
        archive key (``intake/keys.py``) is its own segment, anything else is percent-encoded."""
        segment = quote(partition, safe="")
        return base_path / ("%2E" + segment[1:] if segment.startswith(".") else segment)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.partition_key if context.has_partition_key else None
        if partition is None or not context.has_asset_key:
            super().handle_output(context, obj)
        else:  # the same path as the base class, without its "path" metadata: internal noise in the UI
            path = self._partition_path(context.asset_key, partition)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.dump_to_path(context, obj, path)
        if context.has_asset_key:  # an op's output (import_file's result) is read by no asset
            self._objects[_key(context.asset_key, partition)] = obj

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: "UPath") -> None:
        with path.open("wb") as file:
            pickler = pickle.Pickler(file, pickle.HIGHEST_PROTOCOL)
            pickler.fast = True
            try:
                pickler.dump(obj)
                return
            except ValueError:  # fast mode refuses cycles; an output with one gets the memo after all
                pass
        with path.open("wb") as file:
            pickle.dump(obj, file, pickle.HIGHEST_PROTOCOL)

    def load_from_path(self, context: dg.InputContext, path: "UPath") -> Any:
        with path.open("rb") as file:
            return pickle.load(file)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_key and context.asset_key in IMPORT_ASSET_KEYS:
            require_whole_import(context)  # not last run's pickle for a model selected alone
        partition = context.asset_partition_key if context.has_asset_partitions else None
        cached = self._objects.get(_key(context.asset_key, partition))
        return cached if cached is not None else super().load_input(context)

    def _partition_path(self, asset_key: dg.AssetKey, partition: str) -> "UPath":
        """Where the base class reads a partition's pickle: ``<base_dir>/<asset key path>/<partition>``."""
        return self.make_safe_partition_path(self._root.joinpath(*asset_key.path), partition)

    def release(self) -> None:
        """Let go of this run's outputs, closing those that hold files (``close``)."""
        objects, self._objects = self._objects, {}
        for obj in objects.values():
            close = getattr(obj, "close", None)
            if callable(close):
                close()

    def stored_output(self, asset_key: dg.AssetKey, partition: str) -> Any:
        """The output of ``asset_key`` for ``partition``: this run's object, else the pickle an earlier run
        stored (a re-execution from failure). For assets that read an ancestor's output without an input
        edge (the import chain, ``assets/models.py``). Raises ``FileNotFoundError`` if none was stored."""
        key = _key(asset_key, partition)
        if key not in self._objects:
            with self._partition_path(asset_key, partition).open("rb") as file:
                self._objects[key] = pickle.load(file)
        return self._objects[key]


class RunCachedFilesystemIOManager(dg.ConfigurableIOManagerFactory):
    """Filesystem pickles under the instance's storage directory, served from memory within a run; when the
    run ends, the outputs it kept are let go and those holding files closed (``close``: the validated
    archive's spilled records), whether the run succeeded or not."""

    base_dir: str | None = None
    _managers: list[_RunCachedIOManager] = PrivateAttr(default_factory=list)

    def create_io_manager(self, context: dg.InitResourceContext) -> _RunCachedIOManager:
        instance = context.instance
        assert instance is not None  # a run's resources always have their instance
        manager = _RunCachedIOManager(self.base_dir or instance.storage_directory())
        self._managers.append(manager)
        return manager

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        while self._managers:
            self._managers.pop().release()
