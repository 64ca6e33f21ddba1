"""The Fisher preconditioner (jaxrl.optim): each solver against explicit dense Fisher solves in
NumPy, K-FAC factors against a hand computation, the trust region, vmap over seeds, optax.chain,
traced hyperparameters, and a vmapped LAPACK solve that must not hang."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxrl.nets import MLP
from jaxrl.optim import conjugate_gradient, fisher_preconditioner, fisher_vector_product
from jaxrl.optim.fisher import jacobian_rows
from jaxrl.optim.kfac import layer_statistics

pytestmark = pytest.mark.timeout(120)

SOLVERS = ["gram", "cg", "kfac", "diagonal"]
NO_TRUST_REGION = dict(eta_max=1.0, delta=1e30)


def linear_problem(size=16):
    """q = phi . w + b with zero-mean, mutually orthogonal feature columns, so F is diagonal and
    every solver (K-FAC and diagonal included) is exact up to damping."""
    rng = np.random.default_rng(0)
    m = rng.normal(size=(size, 4))
    q, _ = np.linalg.qr(m - m.mean(0))
    phi = (q * np.array([0.5, 1.0, 2.0, 3.0]) * np.sqrt(size)).astype(np.float32)
    model = nn.Dense(1)
    params = model.init(jax.random.PRNGKey(0), phi)
    q_fn = lambda p, b: model.apply(p, b["obs"])[:, 0]  # noqa: E731
    return params, q_fn, {"obs": phi, "target": rng.normal(size=size).astype(np.float32)}


def mlp_problem(size=8, seed=0, hidden=(4,), actions=2):
    """Tiny Q network: jaxrl.nets.MLP on 3-d observations, q = Q(s)[a]."""
    model = MLP(hidden, actions)
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(seed), 4)
    batch = {"obs": jax.random.normal(k1, (size, 3)),
             "action": jax.random.randint(k2, (size,), 0, actions),
             "target": jax.random.normal(k3, (size,))}
    params = model.init(k4, batch["obs"])

    def q_fn(p, b):
        return jnp.take_along_axis(model.apply(p, b["obs"]), b["action"][:, None], axis=1)[:, 0]

    return params, q_fn, batch


def loss_and_grads(params, q_fn, batch):
    def loss(p):
        td = q_fn(p, batch) - batch["target"]
        return 0.5 * jnp.mean(td**2), td

    (_, td), grads = jax.value_and_grad(loss, has_aux=True)(params)
    return grads, td


def explicit(params, q_fn, batch):
    """Float64 NumPy J [B, P], F = J^T J / B, g and td."""
    grads, td = loss_and_grads(params, q_fn, batch)
    flat, unravel = ravel_pytree(params)
    jac = np.asarray(jax.jacrev(lambda w: q_fn(unravel(w), batch))(flat), np.float64)
    return jac, jac.T @ jac / len(jac), np.asarray(ravel_pytree(grads)[0], np.float64), grads, td


def step(opt, params, q_fn, batch, grads, td, state=None):
    state = opt.init(params) if state is None else state
    return opt.update(grads, state, params, q_fn=q_fn, batch=batch, td=td)


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0], np.float64)


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_is_the_exact_natural_gradient_on_a_linear_model(solver):
    params, q_fn, batch = linear_problem()
    _, fisher, g, grads, td = explicit(params, q_fn, batch)
    # K-FAC damps each factor by sqrt(damping), so its error is O(sqrt(damping)).
    damping = 1e-8 if solver == "kfac" else 1e-6
    opt = fisher_preconditioner(solver, damping, cg_iters=10, **NO_TRUST_REGION)
    updates, _ = step(opt, params, q_fn, batch, grads, td)
    exact = np.linalg.solve(fisher, g)
    np.testing.assert_allclose(-flat(updates), exact, atol=2e-3 * np.abs(exact).max())


@pytest.mark.parametrize("solver", ["gram", "cg"])
def test_gram_and_cg_match_a_dense_damped_solve_on_a_two_layer_network(solver):
    params, q_fn, batch = mlp_problem()  # B = 8 < P = 26: the B x B function-space solve
    jac, fisher, g, grads, td = explicit(params, q_fn, batch)
    assert jac.shape == (8, 26)
    damping = 1e-2
    opt = fisher_preconditioner(solver, damping, cg_iters=40, **NO_TRUST_REGION)
    updates, _ = step(opt, params, q_fn, batch, grads, td)
    exact = np.linalg.solve(fisher + damping * np.eye(len(g)), g)
    np.testing.assert_allclose(-flat(updates), exact, atol=1e-3 * np.abs(exact).max())


def test_per_sample_jacobian_rows_equal_the_batch_jacobian():
    params, q_fn, batch = mlp_problem(size=6, hidden=(5, 4), actions=3)
    jac, *_ = explicit(params, q_fn, batch)
    np.testing.assert_allclose(jacobian_rows(q_fn, params, batch), jac, rtol=1e-5, atol=1e-6)


def test_conjugate_gradient_and_fisher_vector_product_helpers():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    a = (m @ m.T + np.eye(6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    # More iterations than the dimension: converged steps must stay finite, not 0/0.
    x = conjugate_gradient(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), iters=20)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)
    params, q_fn, batch = mlp_problem()
    jac, fisher, *_ = explicit(params, q_fn, batch)
    v = jax.tree.map(jnp.ones_like, params)
    fv = fisher_vector_product(lambda p: q_fn(p, batch), params, v)
    np.testing.assert_allclose(flat(fv), fisher @ flat(v), rtol=1e-4, atol=1e-5)


def test_kfac_factors_match_a_hand_computation():
    params, q_fn, batch = mlp_problem(size=7, hidden=(5,), actions=3)
    p = jax.tree.map(lambda t: np.asarray(t, np.float64), params["params"])
    x, act = np.asarray(batch["obs"], np.float64), np.asarray(batch["action"])
    h = np.tanh(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    ones = np.ones((len(x), 1))
    a0, a1 = np.hstack([x, ones]), np.hstack([h, ones])
    g1 = np.eye(3)[act]                                      # d q_i / d s2 = onehot(a_i)
    g0 = p["Dense_1"]["kernel"][:, act].T * (1 - h**2)       # d q_i / d s1
    hand = {"Dense_0": (a0.T @ a0 / 7, g0.T @ g0 / 7), "Dense_1": (a1.T @ a1 / 7, g1.T @ g1 / 7)}

    stats = layer_statistics(q_fn, params, batch, jnp.ones(7))
    assert set(stats) == set(hand)
    for name, (a, g) in hand.items():
        np.testing.assert_allclose(stats[name][0], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats[name][1], g, rtol=1e-5, atol=1e-6)
    # Empirical weights scale g_i by td_i.
    td = jnp.arange(1.0, 8.0)
    emp = layer_statistics(q_fn, params, batch, td)
    gw = g0 * np.arange(1.0, 8.0)[:, None]
    np.testing.assert_allclose(emp["Dense_0"][1], gw.T @ gw / 7, rtol=1e-5, atol=1e-6)

    # The state: the first update takes the batch's factors, the second a moving average.
    opt = fisher_preconditioner("kfac", 1e-3, kfac_decay=0.9)
    grads, td = loss_and_grads(params, q_fn, batch)
    _, state = step(opt, params, q_fn, batch, grads, td)
    np.testing.assert_allclose(state.kfac["Dense_1"].a, hand["Dense_1"][0], rtol=1e-5, atol=1e-6)
    batch2 = {**batch, "obs": batch["obs"] * 2.0}
    _, state = step(opt, params, q_fn, batch2, grads, td, state)
    a2 = layer_statistics(q_fn, params, batch2, jnp.ones(7))["Dense_0"][0]
    np.testing.assert_allclose(state.kfac["Dense_0"].a, 0.9 * hand["Dense_0"][0] + 0.1 * a2,
                               rtol=1e-5, atol=1e-6)


def test_kfac_rejects_networks_it_does_not_support():
    with pytest.raises(ValueError, match="solver='kfac' supports only dense layers"):
        fisher_preconditioner("kfac").init({"params": {"log_std": jnp.zeros(2)}})
    params, _, batch = mlp_problem()
    q_fn = lambda p, b: b["obs"] @ p["params"]["Dense_0"]["kernel"][:, 0]  # noqa: E731  no flax
    grads, td = jax.tree.map(jnp.zeros_like, params), jnp.zeros(8)
    with pytest.raises(ValueError, match="did not call the dense layers"):
        step(fisher_preconditioner("kfac"), params, q_fn, batch, grads, td)
    with pytest.raises(ValueError, match="solver must be one of"):
        fisher_preconditioner("newton")


@pytest.mark.parametrize("solver", ["gram", "cg"])
def test_step_lands_on_the_least_squares_minimum_as_damping_goes_to_zero(solver):
    params, q_fn, batch = linear_problem()
    # ravel_pytree order: bias, kernel
    phi = np.hstack([np.ones((16, 1)), np.asarray(batch["obs"], np.float64)])
    w_star = np.linalg.lstsq(phi, np.asarray(batch["target"], np.float64), rcond=None)[0]
    grads, td = loss_and_grads(params, q_fn, batch)
    errors = []
    for damping in (1e-1, 1e-3, 1e-6):
        opt = fisher_preconditioner(solver, damping, cg_iters=10, **NO_TRUST_REGION)
        updates, _ = step(opt, params, q_fn, batch, grads, td)
        errors.append(np.abs(flat(optax.apply_updates(params, updates)) - w_star).max())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4 * np.abs(w_star).max(), errors


@pytest.mark.parametrize("solver", SOLVERS)
def test_trust_region_bounds_the_rms_change_of_the_q_values(solver):
    params, q_fn, batch = mlp_problem()
    grads, td = loss_and_grads(params, q_fn, batch)
    delta = 1e-6
    opt = fisher_preconditioner(solver, 1e-2, eta_max=1e3, delta=delta)
    updates, _ = step(opt, params, q_fn, batch, grads, td)
    dq = q_fn(optax.apply_updates(params, updates), batch) - q_fn(params, batch)
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(dq))), np.sqrt(2 * delta), rtol=0.05)
    # eta_max caps the step when the trust region is loose.
    small, _ = step(fisher_preconditioner(solver, 1e-2, eta_max=1e-3, delta=1.0),
                    params, q_fn, batch, grads, td)
    free, _ = step(fisher_preconditioner(solver, 1e-2, **NO_TRUST_REGION),
                   params, q_fn, batch, grads, td)
    np.testing.assert_allclose(flat(small), 1e-3 * flat(free), rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_empirical_fisher_flag_changes_the_step(solver):
    params, q_fn, batch = mlp_problem()
    grads, td = loss_and_grads(params, q_fn, batch)
    true, _ = step(fisher_preconditioner(solver, 1e-2), params, q_fn, batch, grads, td)
    emp_opt = fisher_preconditioner(solver, 1e-2, empirical=True)
    emp, _ = step(emp_opt, params, q_fn, batch, grads, td)
    assert np.all(np.isfinite(flat(emp)))
    assert np.abs(flat(true) - flat(emp)).max() > 1e-3 * np.abs(flat(true)).max()


def test_state_vmaps_over_seeds_and_composes_with_optax_chain():
    q_fn = mlp_problem()[1]
    params, batch = jax.vmap(lambda seed: mlp_problem(seed=seed)[::2])(jnp.arange(3))
    grads, td = jax.vmap(lambda p, b: loss_and_grads(p, q_fn, b))(params, batch)
    for solver in SOLVERS:
        opt = optax.chain(fisher_preconditioner(solver, 1e-2, eta_max=0.5, delta=1e-2),
                          optax.scale(0.5))

        def two_updates(p, b, g, t):
            state = opt.init(p)
            u, state = opt.update(g, state, p, q_fn=q_fn, batch=b, td=t)
            return opt.update(g, state, p, q_fn=q_fn, batch=b, td=t)

        updates, state = jax.jit(jax.vmap(two_updates))(params, batch, grads, td)
        assert state[0].count.shape == (3,)
        for i in range(3):
            pick = lambda t: jax.tree.map(lambda x: x[i], t)  # noqa: E731
            lone = fisher_preconditioner(solver, 1e-2, eta_max=0.5, delta=1e-2)
            u, s = step(lone, pick(params), q_fn, pick(batch), pick(grads), pick(td))
            u, _ = step(lone, pick(params), q_fn, pick(batch), pick(grads), pick(td), s)
            np.testing.assert_allclose(flat(pick(updates)), 0.5 * flat(u), rtol=1e-4, atol=1e-6,
                                       err_msg=solver)


def test_hyperparameters_may_be_traced():
    params, q_fn, batch = mlp_problem()
    grads, td = loss_and_grads(params, q_fn, batch)

    @jax.jit
    def update(eta_max, delta, damping, decay):
        opt = fisher_preconditioner("kfac", damping, eta_max, delta, kfac_decay=decay)
        return step(opt, params, q_fn, batch, grads, td)[0]

    traced = update(0.3, 1e-3, 1e-2, 0.9)
    concrete = step(fisher_preconditioner("kfac", 1e-2, 0.3, 1e-3, kfac_decay=0.9),
                    params, q_fn, batch, grads, td)[0]
    np.testing.assert_allclose(flat(traced), flat(concrete), rtol=1e-5, atol=1e-7)


def test_vmapped_lapack_solves_in_a_training_like_program_finish():
    """The gram (Cholesky B x B) and K-FAC (Cholesky inverses) solves, vmapped over seeds inside a
    scanned training loop; in a subprocess so a LAPACK deadlock fails this test, not the suite."""
    from conftest import run_python

    out = run_python("""
import jax, jax.numpy as jnp, optax
from jaxrl.nets import MLP
from jaxrl.optim import fisher_preconditioner
model = MLP((16,), 2)
def q_fn(p, b):
    return jnp.take_along_axis(model.apply(p, b[0]), b[1][:, None], axis=1)[:, 0]
def train(key, solver):
    opt = fisher_preconditioner(solver, 1e-2, eta_max=0.1, delta=1e-3, kfac_inverse_every=2)
    params = model.init(key, jnp.zeros((1, 4)))
    def body(carry, k):
        params, state = carry
        obs = jax.random.normal(k, (32, 4)); act = (obs[:, 0] > 0).astype(jnp.int32)
        def loss(p):
            td = q_fn(p, (obs, act)) - obs[:, 1]
            return 0.5 * jnp.mean(td ** 2), td
        (l, td), g = jax.value_and_grad(loss, has_aux=True)(params)
        u, state = opt.update(g, state, params, q_fn=q_fn, batch=(obs, act), td=td)
        return (optax.apply_updates(params, u), state), l
    return jax.lax.scan(body, (params, opt.init(params)), jax.random.split(key, 20))[1]
keys = jax.random.split(jax.random.PRNGKey(0), 4)
for solver in ("gram", "kfac"):
    losses = jax.jit(jax.vmap(lambda k: train(k, solver)))(keys)
    print(solver, bool(jnp.all(losses[:, -1] < losses[:, 0])))
""", timeout=100)
    assert "gram True" in out and "kfac True" in out


def test_lapack_free_inverses_match_numpy():
    from jaxrl.optim.linalg import spd_inverse, spd_inverse_many

    rng = np.random.default_rng(2)
    mats = []
    for n in (5, 65, 2, 64, 3, 130):  # groups: 130 | 65, 64 | 5, 3 | 2
        m = rng.normal(size=(n, n + 3))
        mats.append((m @ m.T / n + 0.1 * np.eye(n)).astype(np.float32))
    many = jax.jit(spd_inverse_many)([jnp.asarray(m) for m in mats])
    for m, inv in zip(mats, many):
        want = np.linalg.inv(m.astype(np.float64))
        np.testing.assert_allclose(inv, want, rtol=0, atol=2e-4 * np.abs(want).max())
        np.testing.assert_allclose(spd_inverse(jnp.asarray(m)), want, rtol=0,
                                   atol=2e-4 * np.abs(want).max())


def test_kfac_refreshes_inverses_on_schedule_even_with_a_batched_count():
    """The refresh is a real branch on whether any vmapped run is due (an unbatched flag), so runs
    in step invert once every kfac_inverse_every updates; a lone run refreshes exactly at counts
    0, k, 2k, ... to damped inverses of its averaged factors, and vmapped runs whose counts differ
    (a batched count) each get what they would get alone."""
    q_fn = mlp_problem()[1]
    damping, every = 1e-2, 3
    opt = fisher_preconditioner("kfac", damping, kfac_inverse_every=every, kfac_decay=0.8,
                                **NO_TRUST_REGION)

    def one(p, b, g, t, s):
        return opt.update(g, s, p, q_fn=q_fn, batch=b, td=t)

    lone = jax.jit(one)
    params, _, _ = mlp_problem()
    state = opt.init(params)
    for n in range(7):
        params, _, batch = mlp_problem(seed=n)  # a new network and batch each update
        grads, td = loss_and_grads(params, q_fn, batch)
        _, new = lone(params, batch, grads, td, state)
        for name, f in new.kfac.items():
            old = state.kfac[name]
            if n % every == 0:
                a, g = np.asarray(f.a, np.float64), np.asarray(f.g, np.float64)
                pi = np.sqrt((np.trace(a) / len(a)) / (np.trace(g) / len(g)))
                root = np.sqrt(damping)
                np.testing.assert_allclose(f.a_inv, np.linalg.inv(a + pi * root * np.eye(len(a))),
                                           rtol=1e-3, atol=1e-3)
                np.testing.assert_allclose(f.g_inv, np.linalg.inv(g + root / pi * np.eye(len(g))),
                                           rtol=1e-3, atol=1e-3)
            else:
                np.testing.assert_array_equal(f.a_inv, old.a_inv)
                np.testing.assert_array_equal(f.g_inv, old.g_inv)
        state = new

    # Three runs at counts 0, 1, 2 (then 1, 2, 3): a batched count, one vmapped program.
    params, batch = jax.vmap(lambda seed: mlp_problem(seed=seed)[::2])(jnp.arange(3))
    grads, td = jax.vmap(lambda p, b: loss_and_grads(p, q_fn, b))(params, batch)
    pick = lambda t, i: jax.tree.map(lambda x: x[i], t)  # noqa: E731
    states = []
    for i in range(3):
        s = opt.init(pick(params, i))
        for _ in range(i):
            s = lone(pick(params, i), pick(batch, i), pick(grads, i), pick(td, i), s)[1]
        states.append(s)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    vmapped = jax.jit(jax.vmap(one))
    assert "conditional" in vmapped.lower(params, batch, grads, td, stacked).compile().as_text()
    for _ in range(2):
        updates, new = vmapped(params, batch, grads, td, stacked)
        for i in range(3):
            u, s = lone(pick(params, i), pick(batch, i), pick(grads, i), pick(td, i), states[i])
            np.testing.assert_allclose(flat(pick(updates, i)), flat(u), rtol=1e-4, atol=1e-6)
            for got, want in zip(jax.tree.leaves(pick(new, i)), jax.tree.leaves(s)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
            states[i] = s
        stacked = new


def test_kfac_capture_gives_the_gradient_and_the_jacobian_vector_product():
    from jaxrl.optim import kfac

    params, q_fn, batch = mlp_problem(size=9, hidden=(5, 4), actions=3)
    q, captured = kfac.capture(q_fn, params, batch)
    np.testing.assert_allclose(q, q_fn(params, batch), rtol=1e-6)
    cot = jnp.linspace(-1.0, 2.0, 9)
    want = jax.grad(lambda p: jnp.sum(cot * q_fn(p, batch)))(params)
    np.testing.assert_allclose(flat(kfac.gradients(captured, cot, params)), flat(want),
                               rtol=1e-5, atol=1e-6)
    v = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), params)
    jv = jax.jvp(lambda p: q_fn(p, batch), (params,), (v,))[1]
    np.testing.assert_allclose(kfac.directional_derivative(captured, v), jv, rtol=1e-5, atol=1e-5)


def test_kfac_quadratic_form_equals_an_explicit_kronecker_product():
    """kfac.quadratic_form against vec(X)^T (A (x) G) vec(X) with np.kron of the state's factors
    (float64, per layer, summed); on one sample of a one-layer model A (x) G is the exact Fisher,
    so it equals ||J x||^2. The "factors" trust region is eta = min(eta_max, sqrt(2 delta / that))
    times the unconstrained step."""
    from jaxrl.optim import kfac

    params, q_fn, batch = mlp_problem(size=7, hidden=(5,), actions=3)
    grads, td = loss_and_grads(params, q_fn, batch)
    opt = fisher_preconditioner("kfac", 1e-2, kfac_trust_region="factors", **NO_TRUST_REGION)
    free, state = step(opt, params, q_fn, batch, grads, td)
    v = jax.tree.map(lambda x: jnp.sin(jnp.arange(x.size, dtype=x.dtype).reshape(x.shape)), params)
    p = v["params"]
    want = 0.0
    for name, f in state.kfac.items():
        block = np.vstack([p[name]["kernel"], p[name]["bias"][None]]).astype(np.float64)
        want += block.ravel() @ np.kron(np.asarray(f.a, np.float64), np.asarray(f.g, np.float64)) \
            @ block.ravel()
    np.testing.assert_allclose(kfac.quadratic_form(state.kfac, v), want, rtol=1e-5)

    delta = 1e-4
    tight, _ = step(fisher_preconditioner("kfac", 1e-2, eta_max=10.0, delta=delta,
                                          kfac_trust_region="factors"),
                    params, q_fn, batch, grads, td)
    xfx = float(kfac.quadratic_form(state.kfac, free))
    eta = min(10.0, np.sqrt(2 * delta / xfx))
    assert eta < 10.0
    np.testing.assert_allclose(flat(tight), eta * flat(free), rtol=1e-4, atol=1e-9)

    one = {"obs": batch["obs"][:1]}
    model = nn.Dense(1)
    lin = model.init(jax.random.PRNGKey(1), one["obs"])
    lin_q = lambda p, b: model.apply(p, b["obs"])[:, 0]  # noqa: E731
    _, s1 = step(fisher_preconditioner("kfac", 1e-2), lin, lin_q, one,
                 *loss_and_grads(lin, lin_q, {**one, "target": jnp.zeros(1)}))
    u = jax.tree.map(jnp.ones_like, lin)
    jx = jax.jvp(lambda p: lin_q(p, one), (lin,), (u,))[1]
    np.testing.assert_allclose(kfac.quadratic_form(s1.kfac, u), jnp.mean(jx**2), rtol=1e-5)


def test_kfac_statistics_every_k_updates():
    """With kfac_stats_every=3 the factors are unchanged (bit for bit) on the updates in between,
    and on the updates that refresh (counts 0, 3, 6) equal the factors of an every-update
    optimizer fed those updates' batches alone; vmapped runs at different counts (a batched count)
    each get what they get alone."""
    q_fn = mlp_problem()[1]
    every = dict(kfac_decay=0.8, kfac_inverse_every=2, **NO_TRUST_REGION)
    sparse = fisher_preconditioner("kfac", 1e-2, kfac_stats_every=3, **every)
    dense = fisher_preconditioner("kfac", 1e-2, **every)

    def one(opt):
        return jax.jit(lambda p, b, g, t, s: opt.update(g, s, p, q_fn=q_fn, batch=b, td=t))

    lone, reference = one(sparse), one(dense)
    params = mlp_problem()[0]
    state, ref_state = sparse.init(params), dense.init(params)
    for n in range(7):
        params, _, batch = mlp_problem(seed=n)
        grads, td = loss_and_grads(params, q_fn, batch)
        _, new = lone(params, batch, grads, td, state)
        if n % 3:
            for name, f in new.kfac.items():
                np.testing.assert_array_equal(f.a, state.kfac[name].a)
                np.testing.assert_array_equal(f.g, state.kfac[name].g)
        else:
            _, ref_state = reference(params, batch, grads, td, ref_state)
            for name, f in new.kfac.items():
                np.testing.assert_allclose(f.a, ref_state.kfac[name].a, rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(f.g, ref_state.kfac[name].g, rtol=1e-6, atol=1e-7)
        state = new

    params, batch = jax.vmap(lambda seed: mlp_problem(seed=seed)[::2])(jnp.arange(3))
    grads, td = jax.vmap(lambda p, b: loss_and_grads(p, q_fn, b))(params, batch)
    pick = lambda t, i: jax.tree.map(lambda x: x[i], t)  # noqa: E731
    states = []
    for i in range(3):  # counts 0, 1, 2
        s = sparse.init(pick(params, i))
        for _ in range(i):
            s = lone(pick(params, i), pick(batch, i), pick(grads, i), pick(td, i), s)[1]
        states.append(s)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    vmapped = jax.jit(jax.vmap(lambda p, b, g, t, s: sparse.update(g, s, p, q_fn=q_fn, batch=b,
                                                                    td=t)))
    for _ in range(2):
        _, stacked = vmapped(params, batch, grads, td, stacked)
        for i in range(3):
            states[i] = lone(pick(params, i), pick(batch, i), pick(grads, i), pick(td, i),
                             states[i])[1]
            for got, want in zip(jax.tree.leaves(pick(stacked, i)), jax.tree.leaves(states[i])):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
