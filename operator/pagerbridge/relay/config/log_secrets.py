"""What the log redactor scrubs: the loaded secrets (replaced on every config reload) and
every PagerDuty override key the relay has seen (a routing key taken from a BigPanda alert
tag is as much a credential as the default key, but it arrives in webhooks, not files).

Override keys are too many to remember one by one (a relay may see any number of them), so
once the relay has seen one it scrubs every 32-letter-or-digit word (the only shape an
override key is accepted in, :data:`pagerbridge.api.contract.ROUTING_KEY_PATTERN`): memory
stays constant however many keys pass. A value of another shape (none is accepted today,
kept as a guard) is remembered exactly, the :data:`MAX_OTHER_KEYS` most recent of them. A
key is reported when its webhook is accepted and again when its job is delivered (jobs
restored after a restart, or taken over from another replica).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from pagerbridge.api.contract import ROUTING_KEY_PATTERN, is_routing_key
from pagerbridge.jsonlog import Redactor

# A routing key as a whole word: not part of a longer run of letters and digits.
OVERRIDE_KEY_WORD = rf"(?<![A-Za-z0-9]){ROUTING_KEY_PATTERN}(?![A-Za-z0-9])"
MAX_OTHER_KEYS = 10_000


class LogSecrets:
    def __init__(self, redactor: Redactor, loaded: Iterable[str] = ()) -> None:
        self.redactor = redactor
        self._loaded = list(loaded)
        self._by_shape = False
        self._others: OrderedDict[str, None] = OrderedDict()
        self._push()

    def set_loaded(self, values: Iterable[str]) -> None:
        self._loaded = list(values)
        self._push()

    def add_override(self, key: str | None) -> None:
        if not key:
            return
        if is_routing_key(key):
            if not self._by_shape:
                self._by_shape = True
                self.redactor.set_patterns([OVERRIDE_KEY_WORD])
            return
        if key in self._others:
            self._others.move_to_end(key)
            return
        self._others[key] = None
        while len(self._others) > MAX_OTHER_KEYS:
            self._others.popitem(last=False)
        self._push()

    @property
    def remembered(self) -> int:
        """Override keys held one by one (bounded: :data:`MAX_OTHER_KEYS`)."""
        return len(self._others)

    def _push(self) -> None:
        self.redactor.set_secrets([*self._loaded, *self._others])
