"""K-FAC for the Gaussian-on-Q Fisher of a dense network: per-layer Kronecker factors, their
moving averages and damped inverses, and the preconditioned gradient.

Supported networks: flax.linen models whose parameters are all `nn.Dense` layers
({'kernel': [in, out], 'bias': [out]} or no bias), each called once per forward pass on a
[B, in] input -- e.g. `jaxrl.nets.MLP` (Dense_0 .. Dense_n) or several of them (ActorCritic's
towers, if the policy's log_std is not among the parameters). `q_fn` must run the model through
flax (`module.apply`) so the layers' inputs and pre-activation gradients can be captured with
`flax.linen.intercept_methods`; anything else raises a ValueError naming the parameter or layer.

For layer input a_i (with a 1 appended when the layer has a bias) and g_i = w_i * d q_i / d s_i
(s_i the layer's pre-activations, w_i = 1 for the true Fisher or the TD error for the empirical
one) the layer's Fisher block is approximated by A (x) G with A = mean_i a_i a_i^T and
G = mean_i g_i g_i^T, and its natural gradient, in the [in, out] kernel layout, is
(A + pi sqrt(damping) I)^-1 [dW; db] (G + sqrt(damping) / pi I)^-1. The same factors give ACKTR's
cheap measure of a step's size, x^T (A (x) G) x summed over layers (`quadratic_form`), in place
of the exact ||J x||^2 / B."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util
from jax.custom_batching import custom_vmap

from jaxrl.optim.linalg import spd_inverse_many

PyTree = Any


class KFACFactors(NamedTuple):
    a: jax.Array      # [in(+1), in(+1)] moving average of E[a a^T]
    g: jax.Array      # [out, out] moving average of E[g g^T]
    a_inv: jax.Array  # [in(+1), in(+1)] damped inverse of a, refreshed every `inverse_every` steps
    g_inv: jax.Array  # [out, out] damped inverse of g


def dense_layers(params: PyTree) -> dict[str, tuple]:
    """Layer name ('MLP_0/Dense_1', the flax module path) -> key prefix of its leaves in `params`.

    Raises ValueError for any parameter that is not a dense kernel [in, out] or bias [out]."""
    layers: dict[str, tuple] = {}
    flat = traverse_util.flatten_dict(params) if hasattr(params, "items") else {(): params}
    for keys, leaf in flat.items():
        kind = keys[-1] if keys else None
        if kind not in ("kernel", "bias") or jnp.ndim(leaf) != (2 if kind == "kernel" else 1):
            raise ValueError(f"solver='kfac' supports only dense layers (flax nn.Dense params "
                             f"{{'kernel': [in, out], 'bias': [out]}}, e.g. jaxrl.nets.MLP); got "
                             f"parameter {'/'.join(map(str, keys)) or '<root>'} of shape "
                             f"{jnp.shape(leaf)}; use solver='gram', 'cg' or 'diagonal'")
        prefix = keys[:-1]
        layers["/".join(prefix[1:] if prefix[:1] == ("params",) else prefix)] = prefix
    for name, prefix in layers.items():
        if prefix + ("kernel",) not in flat:
            raise ValueError(f"solver='kfac': layer {name} has a bias but no kernel")
    return layers


def init_factors(params: PyTree) -> dict[str, KFACFactors]:
    """Zero factors and identity inverses (both replaced at the first update)."""
    flat = traverse_util.flatten_dict(params)
    out = {}
    for name, prefix in dense_layers(params).items():
        d_in, d_out = flat[prefix + ("kernel",)].shape
        d_in += (prefix + ("bias",)) in flat
        out[name] = KFACFactors(jnp.zeros((d_in, d_in)), jnp.zeros((d_out, d_out)),
                                jnp.eye(d_in), jnp.eye(d_out))
    return out


def capture(q_fn: Callable[[PyTree, Any], jax.Array], params: PyTree, batch: Any
            ) -> tuple[jax.Array, dict[str, tuple[jax.Array, jax.Array]]]:
    """One forward and one backward pass of q_fn: (q [B], {layer: (a [B, in(+1)], g [B, out])}),
    a the layer's input (with a column of ones appended when the layer has a bias) and row i of
    g = d q_i / d s_i, the gradient of sample i's Q value w.r.t. the layer's pre-activations.

    Everything K-FAC needs comes from these: the factors (`statistics`), the gradient of any loss
    of q (`gradients`) and the exact first-order change of q along a step (`directional_derivative`),
    so a Q-learning step needs no other pass through the network."""
    flat = traverse_util.flatten_dict(params)
    layers = dense_layers(params)

    def run(perturbations):
        inputs = {}
        size = None

        def interceptor(next_fun, args, kwargs, context):
            nonlocal size
            if not (isinstance(context.module, nn.Dense) and context.method_name == "__call__"):
                return next_fun(*args, **kwargs)
            name = "/".join(context.module.path)
            size = args[0].shape[0] if size is None and args[0].ndim == 2 else size
            if name not in layers or name in inputs or args[0].ndim != 2 or len(args[0]) != size:
                raise ValueError(f"solver='kfac' needs each dense layer called once per forward "
                                 f"pass on a [B, in] input with its parameters in `params`; "
                                 f"layer {name} got input shape {args[0].shape}")
            inputs[name] = args[0]
            return next_fun(*args, **kwargs) + perturbations.get(name, 0.0)

        with nn.intercept_methods(interceptor):
            return q_fn(params, batch), inputs

    # The batch size (and the q's dtype) from an abstract evaluation: no work at run time.
    q_shape = jax.eval_shape(lambda: run({})[0])
    size = q_shape.shape[0]
    zeros = {name: jnp.zeros((size, flat[prefix + ("kernel",)].shape[1]), q_shape.dtype)
             for name, prefix in layers.items()}
    q, pullback, inputs = jax.vjp(run, zeros, has_aux=True)
    if set(inputs) != set(layers):
        raise ValueError(f"solver='kfac': q_fn did not call the dense layers "
                         f"{sorted(set(layers) - set(inputs))} through flax; K-FAC needs q_fn to "
                         f"apply a flax model made of nn.Dense layers (e.g. jaxrl.nets.MLP)")
    (grads,) = pullback(jnp.ones_like(q))  # row i of grads[name] = d q_i / d s_i
    out = {}
    for name, prefix in layers.items():
        a = inputs[name]
        if prefix + ("bias",) in flat:
            a = jnp.concatenate([a, jnp.ones((size, 1), a.dtype)], axis=1)
        out[name] = (a, grads[name])
    return q, out


def statistics(captured: dict, weights: jax.Array) -> dict[str, tuple[jax.Array, jax.Array]]:
    """One batch's factors per dense layer, (A = a^T a / B, G = (w g)^T (w g) / B), from
    `capture`; weights [B] scale each sample's g (ones: true Fisher; TD errors: empirical)."""
    stats = {}
    for name, (a, g) in captured.items():
        size = a.shape[0]
        wg = weights[:, None] * g
        stats[name] = (a.T @ a / size, wg.T @ wg / size)
    return stats


def layer_statistics(q_fn: Callable[[PyTree, Any], jax.Array], params: PyTree, batch: Any,
                     weights: jax.Array) -> dict[str, tuple[jax.Array, jax.Array]]:
    """One batch's factors per dense layer: (A [in(+1), in(+1)], G [out, out]).

    q_fn(params, batch) -> [B] taken-action Q values; weights [B] scale each sample's
    pre-activation gradient (ones: true Fisher; TD errors: empirical Fisher)."""
    return statistics(capture(q_fn, params, batch)[1], weights)


def _layer_blocks(tree: PyTree) -> dict[str, jax.Array]:
    """Per dense layer its [in(+1), out] block [kernel; bias] of a params-shaped tree."""
    flat = traverse_util.flatten_dict(tree)
    blocks = {}
    for name, prefix in dense_layers(tree).items():
        kernel, bias = prefix + ("kernel",), prefix + ("bias",)
        blocks[name] = (flat[kernel] if bias not in flat
                        else jnp.concatenate([flat[kernel], flat[bias][None]]))
    return blocks


def gradients(captured: dict, cotangent: jax.Array, params: PyTree) -> PyTree:
    """The gradient of a loss of the Q values whose derivative is dL/dq_i = cotangent[i], from
    `capture`: per layer a^T (cotangent * g), as a tree like `params` (what a backward pass with
    that cotangent gives)."""
    flat = traverse_util.flatten_dict(params)
    out = dict(flat)
    for name, prefix in dense_layers(params).items():
        a, g = captured[name]
        d = a.T @ (cotangent[:, None] * g)
        kernel, bias = prefix + ("kernel",), prefix + ("bias",)
        out[kernel] = d[: flat[kernel].shape[0]].astype(flat[kernel].dtype)
        if bias in flat:
            out[bias] = d[-1].astype(flat[bias].dtype)
    return traverse_util.unflatten_dict(out)


def directional_derivative(captured: dict, tangent: PyTree) -> jax.Array:
    """J v [B], the exact first-order change of the Q values along `tangent` (a params-shaped
    tree), from `capture`: sum over layers of row-wise (a @ [dW; db]) . g."""
    blocks = _layer_blocks(tangent)
    return sum(jnp.sum((a @ blocks[name].astype(a.dtype)) * g, axis=1)
               for name, (a, g) in captured.items())


@custom_vmap
def _any_over_batch(flag: jax.Array) -> jax.Array:
    """`flag` itself; under vmap, whether any run's flag is set, as an *unbatched* value, so a
    `lax.cond` on it stays a real branch instead of becoming a select that computes both."""
    return flag


@_any_over_batch.def_vmap
def _any_over_batch_rule(axis_size, in_batched, flag):
    return (jnp.any(flag) if in_batched[0] else flag), False


def _real_branch(flag: jax.Array, due: Callable[[], list], keep: Callable[[], list]) -> list:
    """Per run `due()` where its `flag` is set, else `keep()`: computed in a `lax.cond` on whether
    *any* run's flag is set (`_any_over_batch`), so runs in step skip the work when none is due,
    even when `flag` is batched under vmap (e.g. a checkpointed segment's count)."""
    fresh = jax.lax.cond(_any_over_batch(flag), due, keep)
    return [jnp.where(flag, f, k) for f, k in zip(fresh, keep())]


def update_factors(factors: dict[str, KFACFactors], captured: dict, weights: jax.Array,
                   count: jax.Array, decay: jax.Array | float, damping: jax.Array | float,
                   inverse_every: int, pi_damping: bool, stats_every: int = 1
                   ) -> dict[str, KFACFactors]:
    """The factors after update number `count`, from `capture`'s pass on this batch.

    Statistics: when count % stats_every == 0, this batch's factors (`statistics(captured,
    weights)`) enter the moving averages (the first update, count == 0, takes them as they
    are; `decay` applies per statistics update); on the other updates the averages stay as they
    are and the products a^T a, g^T g are not computed (K-FAC's T1). Inverses: when
    count % inverse_every == 0, fresh damped inverses of the averages (Tikhonov damping split
    between the factors: sqrt(damping) each, scaled by pi = sqrt((tr A / dim A) / (tr G / dim G))
    if pi_damping); otherwise the old ones.

    Both are computed in a `lax.cond` on whether *any* vmapped run is due (`_real_branch`): runs
    in step (every vmapped run of one program) invert once every `inverse_every` updates, not at
    every update. Factors of similar size are inverted together, padded to one size
    (`spd_inverse_many`)."""
    names = list(factors)

    def averaged_stats():
        stats = statistics(captured, weights)
        out = []
        for name in names:
            (a_batch, g_batch), f = stats[name], factors[name]
            out += [jnp.where(count == 0, a_batch, decay * f.a + (1 - decay) * a_batch),
                    jnp.where(count == 0, g_batch, decay * f.g + (1 - decay) * g_batch)]
        return out

    def old_stats():
        return [m for name in names for m in (factors[name].a, factors[name].g)]

    averaged = (averaged_stats() if stats_every == 1
                else _real_branch(count % stats_every == 0, averaged_stats, old_stats))

    def invert():
        damped = []
        for a, g in zip(averaged[::2], averaged[1::2]):
            pi = 1.0
            if pi_damping:
                tiny = jnp.finfo(a.dtype).tiny
                pi = jnp.sqrt(jnp.maximum(jnp.trace(a) / a.shape[0], tiny)
                              / jnp.maximum(jnp.trace(g) / g.shape[0], tiny))
            root = jnp.sqrt(damping)
            damped += [a + pi * root * jnp.eye(a.shape[0]), g + root / pi * jnp.eye(g.shape[0])]
        return spd_inverse_many(damped)

    def old_inverses():
        return [m for name in names for m in (factors[name].a_inv, factors[name].g_inv)]

    inverses = _real_branch(count % inverse_every == 0, invert, old_inverses)
    return {name: KFACFactors(*averaged[2 * i: 2 * i + 2], *inverses[2 * i: 2 * i + 2])
            for i, name in enumerate(names)}


def quadratic_form(factors: dict[str, KFACFactors], tangent: PyTree) -> jax.Array:
    """x^T F x with K-FAC's block-diagonal Fisher, F ~= blockdiag_l(A_l (x) G_l) (the undamped
    moving averages): sum over layers of vec(X)^T (A (x) G) vec(X) = sum((A X) * (X G)) for X
    the layer's [in(+1), out] block [dW; db] of `tangent`. ACKTR's measure of a step: two small
    matrix products per layer instead of a pass over the batch (`directional_derivative`)."""
    blocks = _layer_blocks(tangent)
    return sum(jnp.sum((f.a @ blocks[name]) * (blocks[name] @ f.g)) for name, f in factors.items())


def precondition(grads: PyTree, factors: dict[str, KFACFactors]) -> PyTree:
    """Per layer A^-1 [dW; db] G^-1 (kernel layout [in, out]); same structure as `grads`."""
    flat = traverse_util.flatten_dict(grads)
    out = dict(flat)
    blocks = _layer_blocks(grads)
    for name, prefix in dense_layers(grads).items():
        f = factors[name]
        kernel, bias = prefix + ("kernel",), prefix + ("bias",)
        x = f.a_inv @ blocks[name] @ f.g_inv
        out[kernel] = x[: flat[kernel].shape[0]]
        if bias in flat:
            out[bias] = x[-1]
    return traverse_util.unflatten_dict(out)
