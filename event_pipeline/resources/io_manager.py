"""The import job's IO manager: pickles on disk, and the same objects in memory for the run.

Every model asset takes the validated archive as an input; with the plain
filesystem IO manager each of them unpickled it again (0.85 s per step for
20k sessions, most of an import's time). The run executes in one process
(in_process_executor), so outputs are kept in memory for the rest of the
run and read back from disk only when they come from an earlier run, as in
a re-execution from failure.

Pickles are written without pickle's memo ("fast" mode): the memo keeps an
entry for each of the millions of objects in the plan of 100k sessions
(which then pickles in 1.0 s instead of 1.7 s), and our outputs are trees
(no cycles) whose shared references may come back as copies.
"""

import pickle
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import dagster as dg

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
        self._objects: dict[tuple[str, str | None], Any] = {}  # lives as long as this run's resources

    def make_safe_partition_path(self, base_path: "UPath", partition: str) -> "UPath":
        """One path segment under ``base_path`` whatever the partition holds (``/``, ``..``): a valid
        archive key (``intake/keys.py``) is its own segment, anything else is percent-encoded."""
        segment = quote(partition, safe="")
        return base_path / ("%2E" + segment[1:] if segment.startswith(".") else segment)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        super().handle_output(context, obj)
        partition = context.partition_key if context.has_partition_key else None
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


class RunCachedFilesystemIOManager(dg.ConfigurableIOManagerFactory):
    """Filesystem pickles under the instance's storage directory, served from memory within a run."""

    base_dir: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> _RunCachedIOManager:
        instance = context.instance
        assert instance is not None  # a run's resources always have their instance
        return _RunCachedIOManager(self.base_dir or instance.storage_directory())
