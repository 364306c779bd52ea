"""Where studies live: storage URLs (checked, passwords hidden everywhere), Optuna
storage opened as ecotune uses it, an incremental reader of a study's trials, a
trial's attributes written in one transaction, a faster read of many trials (whose
user attributes are decoded when first read; :func:`user_attr` reads one of them),
fewer round trips per trial, and Optuna's trial cache with a cheaper look for waiting
trials.

The URL helpers import nothing heavy: the spec and the CLI use them before Optuna loads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecotune._lazy import lazy_exports

_EXPORTS = {
    "STORAGE_ENV": "ecotune.storage._url",
    "HIDDEN": "ecotune.storage._url",
    "StorageURLError": "ecotune.storage._url",
    "redact_url": "ecotune.storage._url",
    "scrub": "ecotune.storage._url",
    "choose_storage": "ecotune.storage._url",
    "describe_storage": "ecotune.storage._url",
    "scheme_problem": "ecotune.storage._url",
    "check_storage_url": "ecotune.storage._url",
    "open_storage": "ecotune.storage._open",
    "journal_path": "ecotune.storage._open",
    "heartbeat_settings_s": "ecotune.storage._open",
    "JOURNAL_SCHEME": "ecotune.storage._open",
    "TRIAL_NUMBER_INDEX": "ecotune.storage._open",
    "index_trial_numbers": "ecotune.storage._open",
    "RedactedStorage": "ecotune.storage._open",
    "TrialCursor": "ecotune.storage._trial_cursor",
    "set_user_attrs": "ecotune.storage._batch",
    "set_study_system_attrs": "ecotune.storage._batch",
    "BulkReadRDBStorage": "ecotune.storage._bulk_read",
    "collector_paused": "ecotune.storage._bulk_read",
    "PerTrialRDBStorage": "ecotune.storage._per_trial",
    "heartbeat_follows": "ecotune.storage._per_trial",
    "count_from": "ecotune.storage._trial_cursor",
    "TrialCache": "ecotune.storage._trial_cache",
    "trial_cache": "ecotune.storage._trial_cache",
    "user_attr": "ecotune.storage._lazy_trial",
    "StoredTrial": "ecotune.storage._lazy_trial",
}

__all__ = [
    "BulkReadRDBStorage",
    "HIDDEN",
    "JOURNAL_SCHEME",
    "PerTrialRDBStorage",
    "RedactedStorage",
    "STORAGE_ENV",
    "StorageURLError",
    "StoredTrial",
    "TRIAL_NUMBER_INDEX",
    "TrialCache",
    "TrialCursor",
    "check_storage_url",
    "choose_storage",
    "collector_paused",
    "count_from",
    "describe_storage",
    "heartbeat_follows",
    "heartbeat_settings_s",
    "index_trial_numbers",
    "journal_path",
    "open_storage",
    "redact_url",
    "scheme_problem",
    "scrub",
    "set_study_system_attrs",
    "set_user_attrs",
    "trial_cache",
    "user_attr",
]

if TYPE_CHECKING:
    from ecotune.storage._batch import set_study_system_attrs, set_user_attrs
    from ecotune.storage._bulk_read import BulkReadRDBStorage
    from ecotune.storage._lazy_trial import StoredTrial, user_attr
    from ecotune.storage._open import (
        JOURNAL_SCHEME,
        RedactedStorage,
        heartbeat_settings_s,
        journal_path,
        open_storage,
    )
    from ecotune.storage._per_trial import PerTrialRDBStorage, heartbeat_follows
    from ecotune.storage._trial_cache import TrialCache, trial_cache
    from ecotune.storage._trial_cursor import TrialCursor, count_from
    from ecotune.storage._url import (
        HIDDEN,
        STORAGE_ENV,
        StorageURLError,
        check_storage_url,
        choose_storage,
        describe_storage,
        redact_url,
        scheme_problem,
        scrub,
    )

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
