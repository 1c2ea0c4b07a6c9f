"""The fault harness: a recorded closed-loop load against a loopback federation while
faults are injected on a schedule, then checks of the recorded history against every
node's log (docs/reliability.md).

``history.py`` records every request and its answer, ``schedule.py`` runs faults at
given times, ``injectors.py`` holds the faults themselves (each a small function),
``proxy.py`` the TCP proxy a partition goes through, ``registry.py`` a registry that can
be told to misbehave, ``checker.py`` the checks after a run, ``run.py`` one scenario end
to end and ``soak.py`` the long run with its resource samples and plot. Not the
product: nothing outside ``gateway/sandbox`` imports it.
"""
