"""The federated instances' configurations, as one node fetches and applies them.

The node's own signed configuration lists the anchors of the instances its instance
federates with (``GlobalConf.federated``). For each, this module keeps a TUF client of
its own (``<state_dir>/federated/<INSTANCE>/``) under the same rules as the own
configuration: signatures, thresholds, versions against rollback, expiry against freeze,
all checked by ``tuf.ngclient``. A foreign configuration that cannot be verified or has
expired makes only that instance unreachable (:meth:`Federation.refusal`); the own
instance and other federated ones go on.

``sync`` blocks (HTTP, disk): the node runs it in a worker thread, as it does its own
configuration's refresh.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from gateway.conf.anchor import ConfigurationAnchor, root_fingerprint
from gateway.conf.directory import StaticDirectory
from gateway.conf.federation import FederatedDirectory, Reach
from gateway.conf.globalconf import GlobalConf
from gateway.conf.tufclient import ConfigClient, Current, GlobalConfSource, GlobalConfUnavailable
from gateway.core.encoding import format_time
from gateway.core.errors import Code, GatewayError
from gateway.messagelog import ForeignVersion, MessageLog, record_foreign

log = logging.getLogger("gateway.node.federation")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Refusals:
    """The codes one side of an exchange refuses with."""

    not_federated: Code
    unavailable: Code


CONSUMER = Refusals(Code.CP_INSTANCE_NOT_FEDERATED, Code.CP_FEDERATED_CONF_OUTDATED)
PROVIDER = Refusals(Code.SP_INSTANCE_NOT_FEDERATED, Code.SP_FEDERATED_CONF_OUTDATED)


class Federation:
    """One TUF-verified configuration source per federated instance."""

    def __init__(
        self, state_dir: Path, fetch_timeout: float, clock: Callable[[], datetime]
    ) -> None:
        self.root = state_dir / "federated"
        self.fetch_timeout = fetch_timeout
        self.clock = clock
        self._sources: dict[str, GlobalConfSource[StaticDirectory]] = {}
        self._failures: dict[str, str] = {}
        self._synced: tuple[ConfigurationAnchor, ...] | None = None

    def sync(self, conf: GlobalConf, now: datetime) -> bool:
        """Follow ``conf``'s list of federated instances and refresh each one's
        configuration; True if what the node acts on changed (an instance added,
        removed, or a new foreign version applied)."""
        self._synced = conf.federated
        wanted = {a.instance: a for a in conf.federated}
        # Built aside and swapped in as one reference: the event loop reads the sources
        # (``check``, ``status``) while this runs in a worker thread.
        sources = {i: s for i, s in self._sources.items() if wanted.get(i) == s.client.anchor}
        failures = {i: f for i, f in self._failures.items() if i in wanted}
        changed = len(sources) != len(self._sources)  # removed, or an anchor replaced
        fresh: set[str] = set()
        for instance in sorted(set(wanted) - set(sources)):
            # A replaced anchor starts from a clean cache (ConfigClient's anchor marker).
            client = ConfigClient(
                wanted[instance], self.root / instance, fetch_timeout=self.fetch_timeout
            )
            source: GlobalConfSource[StaticDirectory] = GlobalConfSource(client, _directory)
            try:
                source.bootstrap()
            except GlobalConfUnavailable as exc:
                failures[instance] = str(exc)
                log.error("federated instance %s: %s", instance, exc)
                continue
            source.last_success = now
            sources[instance] = source
            failures.pop(instance, None)
            fresh.add(instance)
            changed = True
        for instance, source in sources.items():
            if instance in fresh:
                continue
            candidate = source.refresh_blocking(now)
            if candidate is not None:
                source.install(candidate)
                changed = True
        self._sources, self._failures = sources, failures
        return changed

    def view(self, conf: GlobalConf) -> FederatedDirectory:
        """The union directory of ``conf`` (the own instance's configuration) and each
        federated instance's configuration held now; fetches a newly listed instance's
        first (an unchanged list is refreshed by :meth:`refederate`, not here)."""
        if self._synced != conf.federated:
            self.sync(conf, self.clock())
        federated = frozenset(a.instance for a in conf.federated)
        foreign = {i: s.current.state for i, s in self._sources.items() if i in federated}
        return FederatedDirectory(conf.directory(), foreign, federated)

    def refederate(
        self, source: GlobalConfSource[T], build: Callable[[GlobalConf], T]
    ) -> Current[T] | None:
        """Refresh every federated instance under the own configuration in force; if any
        changed, the same own version with a state built anew (a new union view)."""
        current = source.current
        if not self.sync(current.conf, self.clock()):
            return None
        return replace(current, state=build(current.conf))

    def reason(self, instance: str, now: datetime) -> str | None:
        """Why ``instance``'s configuration cannot be used now, or None if it can."""
        source = self._sources.get(instance)
        if source is None:
            failure = self._failures.get(instance, "not fetched yet")
            return f"no verified configuration of federated instance {instance}: {failure}"
        outdated = source.outdated(now)
        return None if outdated is None else f"federated instance {instance}: {outdated}"

    def check(
        self, directory: FederatedDirectory, instance: str, now: datetime, codes: Refusals
    ) -> None:
        """Refuse an exchange with an owner of ``instance`` unless it is this node's own
        instance or a federated one whose configuration is valid now."""
        reach = directory.reach(instance)
        if reach is Reach.OWN:
            return
        if reach is Reach.NOT_FEDERATED:
            raise GatewayError(
                codes.not_federated,
                f"instance {instance} is not federated with {directory.instance}",
            )
        reason = self.reason(instance, now)
        if reach is Reach.UNAVAILABLE or reason is not None:
            raise GatewayError(codes.unavailable, reason or f"{instance} is not available")

    def held(self) -> list[ForeignVersion]:
        """The version of each federated instance held now (what the next union view is
        built from), as the log's foreign configuration history records it."""
        held = []
        for instance, source in sorted(self._sources.items()):
            current = source.current
            files = dict(current.files)
            root = files.get("metadata/root.json")
            if root is None:
                continue  # no signed files (a fixed configuration): nothing to show
            held.append(
                ForeignVersion(
                    instance,
                    current.conf.serial,
                    format_time(current.valid_until, "seconds"),
                    root_fingerprint(json.loads(root)),
                    current.files,
                )
            )
        return held

    async def record(self, log: MessageLog, applied_at: str) -> None:
        """Durably record each version :meth:`held` names that is new for its instance,
        before the node acts on it (``MessageLogError`` if that fails)."""
        for version in self.held():
            await record_foreign(log, version, applied_at)

    def status(self, now: datetime) -> dict[str, object]:
        """Per federated instance: the applied serial and validity, or the failure."""
        out: dict[str, object] = {}
        for instance, source in sorted(self._sources.items()):
            out[instance] = source.status(now)
        for instance, failure in sorted(self._failures.items()):
            out.setdefault(instance, {"failure": failure})
        return out


class FederatedSource(GlobalConfSource[T]):
    """The own configuration's source with the federated instances' beside it.

    A refresh that finds the own document unchanged refreshes each federated instance's
    and, if one changed, returns the same own version with its state built anew (a new
    union view); ``status`` (``GET /health``) lists each federated instance's under
    ``federated``.
    """

    def __init__(
        self, client: ConfigClient, build: Callable[[GlobalConf], T], clock: Callable[[], datetime]
    ) -> None:
        super().__init__(client, build)
        self.build_state = build
        self.federation = Federation(client.state_dir, client.fetch_timeout, clock)

    def refresh_blocking(self, now: datetime) -> Current[T] | None:
        candidate = super().refresh_blocking(now)
        if candidate is not None:
            return candidate
        try:
            return self.federation.refederate(self, self.build_state)
        except Exception:
            # Like a failed own refresh: keep what is in force, say why, try again later.
            log.exception("federated configuration refresh failed, keeping the one in force")
            return None

    def status(self, now: datetime) -> dict[str, object]:
        return {**super().status(now), "federated": self.federation.status(now)}


def _directory(conf: GlobalConf) -> StaticDirectory:
    return conf.directory()
