"""Strata's embedded engine: a transactional, versioned key-value store on LMDB.

    from engine import Store
    with Store.open("data") as store:
        tx = store.namespace("sample").put({"city:1": {"name": "Braavos"}})
        store.namespace("sample").read(["city:1"], tx=tx)

See ``docs/engine.md`` for the API and ``docs/design.md`` for the on-disk layout.
"""

from . import errors
from .backup import BackupInfo, restore
from .compaction import CompactionReport
from .errors import EngineError
from .events import Event, StreamInfo
from .history import Change, Version
from .namespace import Namespace
from .proved_read import ProvedEntry, ProvedRead
from .records import Item, Limits, NamespaceInfo, ReadResult, Record
from .retention import Retention
from .revert import RevertResult
from .scan import Scan
from .store import Store
from .stream import Stream, StreamPage
from .transfer import (
    ImportReport,
    export,
    export_history,
    export_snapshot,
    import_history,
    import_rows,
    import_snapshot,
)
from .txlog import Operation, TxInfo
from .txn import Transaction
from .txtree import ConsistencyProof, Head, InclusionProof
from .verify import VerifyReport

__all__ = [
    "BackupInfo",
    "Change",
    "CompactionReport",
    "ConsistencyProof",
    "EngineError",
    "Event",
    "Head",
    "ImportReport",
    "InclusionProof",
    "Item",
    "Limits",
    "Namespace",
    "NamespaceInfo",
    "Operation",
    "ProvedEntry",
    "ProvedRead",
    "ReadResult",
    "Record",
    "Retention",
    "RevertResult",
    "Scan",
    "Store",
    "Stream",
    "StreamInfo",
    "StreamPage",
    "Transaction",
    "TxInfo",
    "VerifyReport",
    "Version",
    "errors",
    "export",
    "export_history",
    "export_snapshot",
    "import_history",
    "import_rows",
    "import_snapshot",
    "restore",
]
