"""`launch plan`: where could this spec run, on what, at what price, and is it set up here.

Users switch providers to get GPUs sooner or cheaper, so the answer has to cover
every installed backend at once and say *why* a backend cannot take the spec.
Prices come from the catalog each backend ships (each with its as-of date); nothing here calls a
provider except a backend's optional `live_capacity` hook, which is only asked
when that backend is configured (a key is set), so `plan` stays a local command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import catalog, registry
from launcher.errors import LaunchError, Problem, UsageError
from launcher.spec import PORTABLE_FIELDS

if TYPE_CHECKING:
    from launcher.backend import Backend

# the instance of a backend that runs every node here (local): its rows never say "x N nodes"
THIS_MACHINE = "this machine"


@dataclass(frozen=True)
class PlanRow:
    """One backend's answer for the spec. `fits` False means `reason` says why not."""

    backend: str
    fits: bool
    reason: str = ""
    instance_type: str | None = None
    nodes: int = 1
    gpus: int = 0                       # in all, over every node
    ondemand_usd_hr: float | None = None  # per node
    spot_usd_hr: float | None = None      # per node
    hourly_usd: float | None = None       # all nodes, spot price when the spec asks for spot
    est_cost_usd: float | None = None     # hourly_usd x max_runtime
    configured: bool = False
    config_detail: str = ""
    price_as_of: str | None = None
    capacity: dict[str, bool] | None = field(default=None)  # region -> has capacity now
    region: str | None = None             # where the price applies ("all": every region)
    price_source: str | None = None
    price_note: str = ""                  # what the catalog row says of its price
    price_estimate: bool = False          # the price is an estimate, not the provider's list price
    price_old: bool = False               # the price is older than catalog.STALE_AFTER_DAYS
    price_refreshed: bool = False         # from `launch catalog --refresh`, not the shipped catalog
    needs: str | None = None              # the spec setting this backend needs first (backends.<name>.outputs)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan(spec: Any, backend_names: Iterable[str] | None = None, *, live: bool = True, region: str | None = None,
         max_price: float | None = None) -> list[PlanRow]:
    """A row per backend (all installed ones by default), those that fit first, cheapest first.
    `region`: prices there only; `max_price`: an hourly price (all nodes) above it does not fit."""
    rows = [row_for(name, spec, live=live, region=region, max_price=max_price)
            for name in (backend_names or registry.names())]
    return sorted(rows, key=_rank)


def _rank(row: PlanRow) -> tuple[int, int, float, str]:
    return (not row.fits, not row.configured or row.needs is not None,
            row.hourly_usd if row.hourly_usd is not None else float("inf"), row.backend)


def row_for(name: str, spec: Any, *, live: bool = True, region: str | None = None,
            max_price: float | None = None) -> PlanRow:
    """The plan row for one backend: fit from the catalog and the backend's capabilities,
    readiness from the backend itself, the price from the catalog (the user's refreshed prices
    over the shipped ones), as the spec runs there (`backends.<name>.outputs` applied)."""
    spec = spec.for_backend(name)
    nodes = spec.resources.nodes
    accel = spec.resources.accelerators
    base = PlanRow(backend=name, fits=False, nodes=nodes, gpus=accel.chips * nodes)
    try:
        backend_class = registry.backend_class(name)
    except LaunchError as exc:
        return dataclasses.replace(base, reason=exc.message)
    from launcher.runner import merged_settings

    settings = merged_settings(name, spec.backends.get(name))
    configured, detail = _readiness(backend_class, settings)
    base = dataclasses.replace(base, configured=configured, config_detail=detail)
    caps = backend_class.capabilities
    if spec.finetune is not None or not caps.container:
        return _finetune_row(base, backend_class, settings, spec)
    if accel.is_tpu and not caps.tpu:  # said plainly, before any catalog or machine question
        from launcher.runner import backends_able

        return dataclasses.replace(base, reason=f"no TPUs here (GPU and CPU machines only); TPU slices run on "
                                                f"{', '.join(backends_able('tpu')) or 'no installed backend'}")
    if nodes > 1 and not backend_class.capabilities.multi_node:
        return dataclasses.replace(base, reason=f"single-node only; the spec asks for {nodes} nodes")
    if not catalog.backend_offers(name):
        return _own_machines(base, backend_class, settings, spec, live=live)
    offer, why_not = _offer(name, spec, settings)
    if offer is None:
        if not accel.is_gpu and why_not is None:
            return _cpu_row(base, backend_class, name, spec, settings)
        return dataclasses.replace(base, reason=why_not or "no instance type fits")
    priced = catalog.priced(offer, region)
    if priced is None:
        where = sorted({o.region for o in catalog.priced_offers(name) if o.instance_type == offer.instance_type})
        return dataclasses.replace(base, instance_type=offer.instance_type,
                                   reason=f"no {offer.instance_type} price for region {region} "
                                          f"(the catalog has {', '.join(where) or 'none'}; "
                                          f"`launch catalog --refresh -b {name}` may add more)")
    row = _priced_row(base, priced, spec, spot_capable=caps.spot)
    if accel.is_tpu:
        pinned = settings.get(catalog.pinned_setting(name))
        hosts = "" if pinned else f" on {accel.hosts} host(s)"  # a pinned machine may split the slice otherwise
        row = _note(row, f"{accel.cloud_name} slice: {accel.chips} chips{hosts}, {offer.instance_type}; "
                         "the price is for the whole slice")
    if max_price is not None and row.hourly_usd is not None and row.hourly_usd > max_price:
        return dataclasses.replace(row, fits=False, reason=f"${row.hourly_usd:,.2f}/h is over --max-price "
                                                           f"${max_price:,.2f}/h")
    if max_price is not None and row.hourly_usd is None:
        row = _note(row, "--max-price cannot check a missing price")
    problems = _render_problems(name, spec)
    needs = [p for p in problems if p.path in PORTABLE_FIELDS]
    if needs:
        field_name = needs[0].path
        row = dataclasses.replace(_note(row, f"needs backends.{name}.{field_name}: {needs[0].message}"),
                                  needs=f"backends.{name}.{field_name}")
    if configured:
        refusal = "; ".join(p.message for p in problems if p.path not in PORTABLE_FIELDS)
        if refusal:
            return dataclasses.replace(row, fits=False, reason=refusal)
        if live:
            row = dataclasses.replace(row, capacity=_live_capacity(backend_class, settings, offer.instance_type))
    return row


def _finetune_row(base: PlanRow, backend_class: type[Backend], settings: Mapping[str, Any], spec: Any) -> PlanRow:
    """A hosted fine-tuning job: it fits a backend that fine-tunes, and costs the training price per
    1M tokens times the JSONL files' token estimate times the epochs ("auto" counted as AUTO_EPOCHS)."""
    from launcher import finetune_data

    if spec.finetune is None:
        return dataclasses.replace(base, reason="fine-tunes hosted models; runs no container")
    if not backend_class.capabilities.finetune:
        return dataclasses.replace(base, reason="runs container jobs, not hosted fine-tuning")
    ft = spec.finetune
    row = dataclasses.replace(base, fits=True, gpus=0, instance_type=ft.base_model)
    price = backend_class.training_price(settings, ft.base_model)
    if price is None:
        return _note(row, f"no training price known for {ft.base_model}")
    try:
        tokens = sum(r.tokens for r in finetune_data.reports(ft) if r.file == ft.training_file)
    except finetune_data.BadData as exc:
        return dataclasses.replace(row, fits=False, reason=str(exc.problem))
    epochs = ft.hyperparameters.n_epochs
    counted = epochs if isinstance(epochs, int) else finetune_data.AUTO_EPOCHS
    usd = float(price["usd_per_1m"])
    note = str(price.get("note") or "")
    row = dataclasses.replace(row, est_cost_usd=round(tokens * counted * usd / 1e6, 2),
                              price_source=price.get("source"), price_as_of=price.get("as_of"), price_note=note,
                              price_estimate=note.lower().startswith("estimate"))
    said = f"~{tokens:,} tokens x {counted} epochs" + ("" if isinstance(epochs, int) else " (auto counted as 3)")
    return _note(row, f"{said} at ${usd:g}/1M training tokens" + ("; price is an estimate" if row.price_estimate
                                                                  else "") + (f" ({ft.training_file} is a file id: "
                                                                              "no tokens counted)" if not tokens
                                                                              else ""))


def _priced_row(base: PlanRow, offer: catalog.Offer, spec: Any, *, spot_capable: bool = True) -> PlanRow:
    """The row for `offer`: the spot price for a spot spec where one is listed and the backend asks
    for spot (else on-demand, and the row says so), for all nodes, and the total for max_runtime.
    A backend that runs no spot (`capabilities.spot` False: run ignores spot: true) is priced at
    on-demand even where the provider sells spot, so plan prices the machine run would start."""
    spot = spec.spot and spot_capable
    price = offer.spot_usd_hr if spot and offer.spot_usd_hr is not None else offer.ondemand_usd_hr
    hourly = None if price is None else price * base.nodes
    hours = spec.max_runtime / 3600 if spec.max_runtime else None
    row = dataclasses.replace(base, fits=True, instance_type=offer.instance_type, ondemand_usd_hr=offer.ondemand_usd_hr,
                              spot_usd_hr=offer.spot_usd_hr, hourly_usd=hourly, price_as_of=offer.as_of,
                              est_cost_usd=None if hourly is None or hours is None else round(hourly * hours, 2),
                              region=offer.region, price_source=offer.source, price_note=offer.note,
                              price_estimate=offer.estimate and price is not None, price_old=offer.stale(),
                              price_refreshed=offer.refreshed)
    if price is None:
        wanted = "spot or on-demand" if spec.spot else "on-demand"
        return _note(row, f"no {wanted} price in the catalog" + (f" ({offer.note})" if offer.note else ""))
    if spec.spot and offer.spot_usd_hr is None:
        why = "; ".join(part.strip() for part in offer.note.split(";") if "spot" in part.lower())
        row = _note(row, "no spot price in the catalog" + (f" ({why})" if why else "") + "; on-demand price shown")
    elif spec.spot and not spot_capable:
        row = _note(row, "this backend asks for no spot capacity (run ignores spot: true); on-demand price shown")
    if row.price_estimate:
        row = _note(row, "price is an estimate")
    return row


def _note(row: PlanRow, text: str) -> PlanRow:
    return dataclasses.replace(row, reason="; ".join(filter(None, [row.reason, text])))


def _own_machines(base: PlanRow, backend_class: type[Backend], settings: Mapping[str, Any], spec: Any, *,
                  live: bool = True) -> PlanRow:
    """A backend without catalog prices. One that runs every node on this machine (it reports
    `machine_gpus`) fits only when this machine has the GPUs of all nodes together; one that can
    tell what is free now (a cluster's partitions) says so when configured."""
    have = backend_class.machine_gpus(settings)
    if have is None:
        row = dataclasses.replace(base, fits=True, instance_type=backend_class.machines_label,
                                  reason="runs on machines you provide; no catalog price")
        if base.configured and live:
            row = dataclasses.replace(row, capacity=_live_capacity(backend_class, settings, ""))
        return row
    accel, nodes = spec.resources.accelerators, spec.resources.nodes
    want = accel.count * nodes
    shared = f"{nodes} nodes share this machine, as {nodes} process groups" if nodes > 1 else ""
    here = f"this machine has {have or 'no'} NVIDIA GPU{'' if have == 1 else 's'}"
    if want > have:
        asked = f"{accel}" + (f" per node x {nodes} nodes = {want} GPUs" if nodes > 1 else "")
        return dataclasses.replace(base, instance_type=THIS_MACHINE, reason=f"{here}; the spec asks for {asked} "
                                   "(`launch run` starts it anyway, with a warning)")
    return dataclasses.replace(base, fits=True, instance_type=THIS_MACHINE,
                               reason="; ".join(filter(None, [base.config_detail or here, shared])))


def _cpu_row(base: PlanRow, backend_class: type[Backend], name: str, spec: Any, settings: Mapping[str, Any]) -> PlanRow:
    """A spec without GPUs: the machine the backend's render picks (pinned in settings, else its
    `cpu_instance_type`), so plan and the dry run name the same one."""
    pinned = catalog.pinned_setting(name)
    machine = settings.get(pinned) or backend_class.cpu_instance_type
    if not machine:
        return dataclasses.replace(base, reason=f"no CPU machine known for {name}; set backends.{name}.{pinned}")
    row = dataclasses.replace(base, fits=True, instance_type=str(machine), reason="no CPU prices in the catalog")
    refusal = _render_refusal(name, spec) if row.configured else None
    return dataclasses.replace(row, fits=False, reason=refusal) if refusal else row


def _render_refusal(name: str, spec: Any) -> str | None:
    """What the backend itself would refuse in this spec, as one line (None: nothing)."""
    return "; ".join(p.message for p in _render_problems(name, spec)) or None


def _render_problems(name: str, spec: Any) -> list[Problem]:
    """What the backend itself would refuse in this spec (a missing image, a bad size, outputs in
    another cloud's storage): render is pure, so asking it costs no network and catches what the
    catalog cannot know."""
    from launcher import runner
    from launcher.errors import SpecError

    try:
        backend, effective = runner.backend_and_spec(name, spec)
        backend.render(effective, "plan-check", None, {n: runner.MASK for n in spec.secrets})
    except SpecError as exc:
        return list(exc.problems)
    except LaunchError as exc:
        return [Problem(spec.file, None, "", exc.message)]
    return []


def submit_estimate(name: str, spec: Any) -> float | None:
    """What a submit may cost at catalog prices (nodes x hourly x max_runtime): recorded with the job.
    No readiness check and no live call, so it adds nothing a submit could fail or wait on."""
    if not spec.max_runtime or not catalog.backend_offers(name):
        return None
    from launcher.runner import merged_settings

    offer, _ = _offer(name, spec, merged_settings(name, spec.backends.get(name)))
    if offer is None:
        return None
    spot = spec.spot and registry.backend_class(name).capabilities.spot
    price = offer.spot_usd_hr if spot and offer.spot_usd_hr is not None else offer.ondemand_usd_hr
    return None if price is None else round(price * spec.resources.nodes * spec.max_runtime / 3600, 2)


def _readiness(backend_class: type[Backend], settings: Mapping[str, Any]) -> tuple[bool, str]:
    try:
        ready = backend_class.readiness(settings)
    except LaunchError as exc:
        return False, exc.message
    if not ready.sdk_installed:
        return False, ready.detail or "SDK not installed"
    return ready.configured, ready.detail if ready.configured else (ready.hint or ready.detail or "not configured")


def _offer(name: str, spec: Any, settings: Mapping[str, Any]) -> tuple[catalog.Offer | None, str | None]:
    """The catalog offer this spec gets on `name`: a pinned type if settings pin one, else the
    first offer for the accelerator that meets the cpu/memory minimums."""
    accel = spec.resources.accelerators
    pinned = settings.get(catalog.pinned_setting(name))
    if pinned and accel.is_tpu:  # a slice costs its chips whatever hosts carry them: the slice's row, that machine
        try:
            offer = catalog.choose(name, accel)
        except catalog.CatalogError as exc:
            return None, exc.message
        return dataclasses.replace(offer, instance_type=str(pinned)), None
    if pinned and accel.is_gpu:
        match = [o for o in catalog.backend_offers(name) if o.instance_type == pinned]
        return (match[0], None) if match else (None, f"{pinned} (pinned in settings) is not in the catalog")
    if not accel.is_gpu:
        return None, None
    try:
        return catalog.choose(name, accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb), None
    except catalog.CatalogError as exc:
        return None, exc.message


def _live_capacity(backend_class: type[Backend], settings: Mapping[str, Any],
                   instance_type: str) -> dict[str, bool] | None:
    """Where the backend can tell (Lambda Cloud lists capacity per region), ask it now; a
    failure to ask is not a reason to hide the row."""
    try:
        capacity = backend_class.live_capacity(settings, instance_type)
    except LaunchError:
        return None
    return None if capacity is None else dict(capacity)


def cheapest(rows: list[PlanRow]) -> PlanRow:
    """The cheapest configured backend that fits, by the hourly price of all nodes."""
    usable = [r for r in rows if r.fits and r.configured and r.hourly_usd is not None and r.needs is None]
    if not usable:
        why = "; ".join(f"{r.backend}: {_why_not_chosen(r)}" for r in rows) or "no backends installed"
        raise UsageError(f"no configured backend with a known price fits this spec ({why})",
                         "`launch plan SPEC` shows every backend's answer; name one with --backend")
    return min(usable, key=_rank)


def _why_not_chosen(row: PlanRow) -> str:
    if not row.fits:
        return row.reason
    if not row.configured:
        return "not configured"
    if row.needs:
        return f"needs {row.needs}"
    return "no price known"


def cheapest_ready(rows: list[PlanRow]) -> PlanRow | None:
    """The answer `launch plan` names: the cheapest row that fits, is configured and is priced."""
    usable = [r for r in rows if r.fits and r.configured and r.hourly_usd is not None and r.needs is None]
    return min(usable, key=_rank) if usable else None


def cheapest_fitting(rows: list[PlanRow]) -> PlanRow | None:
    """The cheapest priced row that fits, ready here or not (what to set up, when nothing is ready)."""
    priced = [r for r in rows if r.fits and r.hourly_usd is not None]
    return min(priced, key=lambda r: (r.hourly_usd, r.backend)) if priced else None


def failover_order(text: str) -> list[str]:
    """`--backend a,b,c` -> ["a", "b", "c"]: tried in order, moving on only on capacity errors."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        given = [n for n in names if n]  # the user's own names make the example
        example = ",".join(given) if len(given) > 1 else "first,second"
        raise UsageError(f"--backend {text!r} has an empty name", f"write names separated by commas: {example}")
    if len(set(names)) != len(names):
        raise UsageError(f"--backend {text!r} names a backend twice", "name each backend once")
    return names
