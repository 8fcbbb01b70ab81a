"""What the log redactor scrubs: the loaded secrets (replaced on every config reload) and
every PagerDuty override key the relay has seen (a routing key taken from a BigPanda alert
tag is as much a credential as the default key, but it arrives in webhooks, not files).

Override keys are kept most-recently-seen first, at most :data:`MAX_OVERRIDE_KEYS`; a key
is added when its webhook is accepted and again when its job is delivered (jobs restored
after a restart, or taken over from another replica).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from pagerbridge.jsonlog import Redactor

MAX_OVERRIDE_KEYS = 10_000


class LogSecrets:
    def __init__(self, redactor: Redactor, loaded: Iterable[str] = ()) -> None:
        self.redactor = redactor
        self._loaded = list(loaded)
        self._overrides: OrderedDict[str, None] = OrderedDict()
        self._push()

    def set_loaded(self, values: Iterable[str]) -> None:
        self._loaded = list(values)
        self._push()

    def add_override(self, key: str | None) -> None:
        if not key:
            return
        if key in self._overrides:
            self._overrides.move_to_end(key)
            return
        self._overrides[key] = None
        while len(self._overrides) > MAX_OVERRIDE_KEYS:
            self._overrides.popitem(last=False)
        self._push()

    def _push(self) -> None:
        self.redactor.set_secrets([*self._loaded, *self._overrides])
