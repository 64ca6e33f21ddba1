"""Natural DQN's config: every DQN field, with the same names and defaults (so a comparison changes
only the optimizer), plus the Fisher preconditioner's. `lr` is the largest step, eta_max, of the
trust-region step eta = min(lr, sqrt(2 delta / x^T F x)) on the natural gradient x ~= F^-1 g; lr = 1
with a loose trust region is a full Gauss-Newton step. `max_grad_norm` clips g as for DQN.

The field defaults (lr 0.1, damping 0.1, delta 0.1) are gram's. Solvers tuned to
other values list them in SOLVER_DEFAULTS, the one place for per-solver defaults;
`NaturalDQNConfig.for_solver("cg", **overrides)` applies them, and so does the CLI for the options
not given on the command line (`--preconditioner cg` means lr 1, damping 0.3 unless --lr/--damping
say otherwise; kfac likewise)."""
from __future__ import annotations

from flax import struct

from jaxrl.agents.dqn.config import DQNConfig
from jaxrl.config import hparam, make_config, static


# Per-solver defaults that differ from the field defaults (see the module docstring and README).
# cg: a small grid (damping 0.1..3 x lr 0.1..1, delta 0.1, 10 CG steps, 200k steps, 4 tuning
# seeds) was best at lr 1 (the trust region, not eta_max, sets the step) and damping 0.3.
# kfac: damping 0.03..0.3 x lr 0.1..1 (delta 0.1, 200k steps, tuning seeds 100-105): IQM 290 at
# the field defaults, 423 at lr 1 with damping 0.1 or 0.3 (0.3: fewer poor seeds); 442 on seeds 0-7.
SOLVER_DEFAULTS: dict[str, dict] = {"cg": dict(lr=1.0, damping=0.3), "kfac": dict(lr=1.0, damping=0.3)}


@struct.dataclass
class NaturalDQNConfig(DQNConfig):
    lr: float = hparam(0.1, "eta_max: the largest natural-gradient step, min(lr, sqrt(2 delta / "
                       "x^T F x)); 1 = a full Gauss-Newton step (traced)", low_open=True)
    preconditioner: str = static("kfac", "Fisher solver: gram (exact B x B solve), cg, kfac or "
                                 "diagonal; cg and kfac default to lr 1, damping 0.3", minimum=None)
    damping: float = hparam(0.1, "Tikhonov damping of the Fisher, (F + damping I)", low_open=True)
    delta: float = hparam(0.1, "trust region: the RMS change of the batch's Q values per step is at "
                          "most sqrt(2 delta)", low_open=True)
    cg_iters: int = static(10, "conjugate-gradient steps per update (preconditioner cg)")
    kfac_decay: float = hparam(0.95, "moving-average decay of the K-FAC factors", high=1.0)
    kfac_inverse_every: int = static(10, "gradient steps between K-FAC inverse refreshes")
    empirical_fisher: bool = static(False, "use the empirical Fisher J^T diag(td^2) J / B (an "
                                    "ablation) instead of J^T J / B", minimum=None)

    @staticmethod
    def implied_defaults(fields: dict) -> dict:
        """The chosen solver's SOLVER_DEFAULTS, for the fields not given (`config.make_config`)."""
        return SOLVER_DEFAULTS.get(fields["preconditioner"], {})

    @classmethod
    def for_solver(cls, preconditioner: str, **overrides) -> "NaturalDQNConfig":
        """The config for `preconditioner` with its SOLVER_DEFAULTS, then `overrides`."""
        return make_config(cls, {"preconditioner": preconditioner, **overrides})
