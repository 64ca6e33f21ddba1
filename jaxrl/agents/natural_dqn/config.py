"""Natural DQN's config: every DQN field, with the same names and defaults (so a comparison changes
only the optimizer), plus the Fisher preconditioner's. `lr` is the largest step, eta_max, of the
trust-region step eta = min(lr, sqrt(2 delta / x^T F x)) on the natural gradient x ~= F^-1 g; lr = 1
with a loose trust region is a full Gauss-Newton step. `max_grad_norm` clips g as for DQN.

The field defaults (lr 0.1, damping 0.1, delta 0.1) are gram's. Solvers tuned to
other values list them in SOLVER_DEFAULTS, the one place for per-solver defaults;
`NaturalDQNConfig.for_solver("cg", **overrides)` applies them, and so does the CLI for the options
not given on the command line (`--preconditioner cg` means lr 1, damping 0.3 unless --lr/--damping
say otherwise; kfac likewise). K-FAC's trust region measured with its Kronecker factors
(`kfac_trust_region factors`, the default) has its own delta, TRUST_REGION_DEFAULTS, applied the
same way."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.dqn.config import DQNConfig
from jaxrl.config import hparam, make_config, static
from jaxrl.optim.fisher import KFAC_TRUST_REGIONS


# Per-solver defaults that differ from the field defaults (see the module docstring and README).
# cg: a small grid (damping 0.1..3 x lr 0.1..1, delta 0.1, 10 CG steps, 200k steps, 4 tuning
# seeds) was best at lr 1 (the trust region, not eta_max, sets the step) and damping 0.3.
# kfac: damping 0.03..0.3 x lr 0.1..1 (delta 0.1, 200k steps, tuning seeds 100-105): IQM 290 at
# the field defaults, 423 at lr 1 with damping 0.1 or 0.3 (0.3: fewer poor seeds); 442 on seeds 0-7.
SOLVER_DEFAULTS: dict[str, dict] = {"cg": dict(lr=1.0, damping=0.3), "kfac": dict(lr=1.0, damping=0.3)}
# K-FAC's cost options (docs/performance.md#k-fac): factor statistics every 10 updates and the
# trust region measured with the factors cost ~0.8x the exact, every-update K-FAC's; learning
# kept (IQM 498 on seeds 0-7 at 200k steps, the exact one 442). The factors' x^T (A (x) G) x runs
# far below ||J x||^2 / B, so that trust region needs a smaller delta: 0.003 from delta
# 0.001..0.03 (stats every 10, 200k steps, tuning seeds 100-105: IQM 283, 436, 389, 220 at
# 0.001, 0.003, 0.01, 0.03; at delta 0.1, seeds 0-7, IQM 87).
KFAC_STATS_EVERY, KFAC_TRUST_REGION = 10, "factors"
TRUST_REGION_DEFAULTS: dict[str, dict] = {"factors": dict(delta=0.003)}


@struct.dataclass
class FisherFields:
    """The Fisher preconditioner's fields (and `lr` as its eta_max), shared by natural DQN and
    natural PQN: listed first among a config's bases, `class C(FisherFields, BaseConfig)`, they
    keep the base's field order (lr where the base has it) and add theirs after it."""
    lr: float = hparam(0.1, "eta_max: the largest natural-gradient step, min(lr, sqrt(2 delta / "
                       "x^T F x)); 1 = a full Gauss-Newton step (traced)", low_open=True)
    preconditioner: str = static("kfac", "Fisher solver: gram (exact B x B solve), cg, kfac or "
                                 "diagonal; cg and kfac default to lr 1, damping 0.3", minimum=None)
    damping: float = hparam(0.1, "Tikhonov damping of the Fisher, (F + damping I)", low_open=True)
    delta: float = hparam(0.1, "trust region: the RMS change of the batch's Q values per step is at "
                          "most sqrt(2 delta)", low_open=True)
    cg_iters: int = static(10, "conjugate-gradient steps per update (preconditioner cg)")
    kfac_decay: float = hparam(0.95, "moving-average decay of the K-FAC factors, per statistics "
                               "update", high=1.0)
    kfac_inverse_every: int = static(10, "gradient steps between K-FAC inverse refreshes")
    kfac_stats_every: int = static(KFAC_STATS_EVERY, "gradient steps between K-FAC factor "
                                   "statistics (a^T a, g^T g); the gradient is every step")
    kfac_trust_region: str = static(KFAC_TRUST_REGION, "K-FAC's trust-region size x^T F x: exact "
                                    "(||J x||^2 / B) or factors (ACKTR's x^T (A (x) G) x, cheaper)",
                                    choices=KFAC_TRUST_REGIONS)
    empirical_fisher: bool = static(False, "use the empirical Fisher J^T diag(td^2) J / B (an "
                                    "ablation) instead of J^T J / B", minimum=None)

    @staticmethod
    def implied_defaults(fields: dict) -> dict:
        """The chosen solver's SOLVER_DEFAULTS (for kfac also its trust region's
        TRUST_REGION_DEFAULTS), for the fields not given (`config.make_config`)."""
        solver = fields["preconditioner"]
        region = TRUST_REGION_DEFAULTS.get(fields["kfac_trust_region"], {}) if solver == "kfac" else {}
        return SOLVER_DEFAULTS.get(solver, {}) | region

    @classmethod
    def for_solver(cls, preconditioner: str, **overrides):
        """The config for `preconditioner` with its implied defaults, then `overrides`."""
        return make_config(cls, {"preconditioner": preconditioner, **overrides})


@struct.dataclass
class NaturalDQNConfig(FisherFields, DQNConfig):
    pass
