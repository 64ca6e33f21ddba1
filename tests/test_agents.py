"""The agent interface: a typed Algo per agent in a dict registry; each Trainer's params,
with_params (everything derived from the params rebuilt, so fine-tuning is correct by
construction), deterministic policy and value function built from params alone."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxrl.agents import ALGOS, Algo, get_algo, register
from jaxrl.runner import make_plan, seed_key
from jaxrl.runner.program import init_fn

pytestmark = pytest.mark.timeout(300)


def tiny(algo: str):
    small = dict(total_steps=600, learning_starts=200, buffer_size=400, batch_size=16,
                 hidden_sizes=(16,))
    rollout = dict(total_steps=128, num_envs=4, num_steps=16, update_epochs=1, num_minibatches=2,
                   hidden_sizes=(16,))
    return {"ppo": dict(total_steps=128, num_envs=4, num_steps=16, update_epochs=1,
                        num_minibatches=2, hidden_sizes=(16,), normalize_obs=True),
            "dqn": small, "natural_dqn": small, "naf": small, "ddpg": small, "td3": small,
            "sac": small, "pqn": rollout, "natural_pqn": rollout}[algo]


ENVS = {"ppo": "Pendulum-v1", "dqn": "CartPole-v1", "natural_dqn": "CartPole-v1",
        "naf": "Pendulum-v1", "ddpg": "Pendulum-v1", "td3": "Pendulum-v1", "sac": "Pendulum-v1",
        "pqn": "CartPole-v1", "natural_pqn": "CartPole-v1"}


def test_registry_holds_typed_algos():
    assert set(ALGOS) >= {"ppo", "dqn", "natural_dqn", "naf"}
    for name, algo in ALGOS.items():
        assert isinstance(algo, Algo) and algo.name == name
    variant = register("ppo_test_variant", base="ppo", loss_fn=None)
    assert get_algo("ppo_test_variant") is variant and variant.Config is ALGOS["ppo"].Config
    del ALGOS["ppo_test_variant"]


@pytest.mark.parametrize("algo", ["dqn", "naf", "ppo", "pqn", "natural_pqn"])
def test_with_params_rebuilds_what_derives_from_params(algo):
    """Fine-tuning from trained params: the runner's init puts them in through the agent's
    with_params, so a Q-learner's target network is the loaded network (not a random one) and
    every optimizer state is fresh for those params; PPO's observation statistics come along."""
    spec = get_algo(algo)
    config = spec.Config(**tiny(algo))
    plan = make_plan(algo, ENVS[algo], [config], [1])
    trainer = plan.trainer
    trained = jax.jit(trainer)(config, seed_key(0))[0]
    params = trainer.params(trained)
    state = jax.jit(init_fn(plan))(config, seed_key(1), None, params)
    for a, b in zip(jax.tree.leaves(trainer.params(state)), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    fresh = trainer.init(config, seed_key(1))
    if algo == "ppo":
        opt_state, net = state.opt_state, params.network
        assert np.all(np.asarray(state.env_state.count) == np.asarray(params.obs_norm["count"]))
        assert float(params.obs_norm["count"]) > float(fresh.env_state.count[0])
    elif algo in ("pqn", "natural_pqn"):  # no target network: params, a fresh optimizer state
        opt_state, net = state.opt_state, params
    else:
        opt_state, net = state.agent.opt_state, params
        for a, b in zip(jax.tree.leaves(state.agent.target_params), jax.tree.leaves(params)):
            np.testing.assert_array_equal(a, b)
    # The optimizer state is what a fresh optimizer gives these params (Adam: zero moments;
    # K-FAC: zero factors, identity inverses, as from any params).
    count = [x for x in jax.tree.leaves(opt_state) if x.dtype == jnp.int32]
    assert count and all(int(c) == 0 for c in count)
    if algo == "natural_pqn":
        for a, b in zip(jax.tree.leaves(opt_state), jax.tree.leaves(fresh.opt_state)):
            np.testing.assert_array_equal(a, b)
    else:
        moments = [x for x in jax.tree.leaves(opt_state) if x.dtype == jnp.float32]
        assert moments and all(np.all(np.asarray(m) == 0) for m in moments)
    assert jax.tree.structure(net) == jax.tree.structure(trainer.params(fresh) if algo != "ppo"
                                                         else fresh.params)


@pytest.mark.parametrize("algo", ["dqn", "naf", "ppo", "ddpg", "td3", "sac", "pqn",
                                  "natural_pqn"])
def test_policy_and_value_are_functions_of_params_alone(algo):
    spec = get_algo(algo)
    config = spec.Config(**tiny(algo))
    env, env_params = envs.make(ENVS[algo])
    trainer = spec.make_trainer(config, env, env_params)
    params = trainer.params(trainer.init(config, seed_key(0)))
    obs = jnp.stack([env.reset(k, env_params)[0] for k in jax.random.split(seed_key(2), 5)])
    actions = jax.jit(lambda p, o: trainer.policy(p)(o))(params, obs)
    values = trainer.value(params)(obs)
    space = env.action_space(env_params)
    if envs.is_discrete(env, env_params):
        assert actions.shape == (5,) and values.shape == (5, space.n)
        np.testing.assert_array_equal(actions, np.argmax(values, axis=-1))  # greedy in Q
    else:
        assert actions.shape == (5,) + space.shape and values.shape == (5,)
        assert np.all(actions >= space.low - 1e-6) and np.all(actions <= space.high + 1e-6)
    # deterministic (no sampling): eager equals jitted up to float rounding
    np.testing.assert_allclose(actions, trainer.policy(params)(obs), rtol=1e-5, atol=1e-7)
