"""The reconcile loop of an integration: where "how does this become Ready?" is answered.

:mod:`.reconciler` (the queue and the triggers) runs :mod:`.admission` (parse, policies),
:mod:`.converge` (the steps), :mod:`.assemble` (the typed status) and
:mod:`.status_writer` (the one serialiser), with :mod:`.grace` for a new relay;
:mod:`.cleanup` lets go on deletion; :mod:`.queue` is the work queue, and
:mod:`.api_recovery` re-runs its failed keys once the API server answers again.

Below the runtime; may import steps, external, render, policy and state.
"""
