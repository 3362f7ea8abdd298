"""Control policies for two gymnasium tasks: balance a pole on a cart, swing a pendulum upright."""

import math


# EVOLVE-BLOCK-START
def cartpole_action(obs):
    """Returns 0 (push the cart left) or 1 (push it right) for CartPole-v1.

    obs = [cart position, cart velocity, pole angle in radians (0 = upright, > 0 = leaning
    right), pole angular velocity]. The episode ends when the pole falls past 12 degrees, the
    cart leaves the track, or after 500 steps; each step alive earns 1.
    """
    return 1 if obs[2] > 0 else 0


def pendulum_torque(obs):
    """Returns the torque in [-2, 2] for Pendulum-v1 (values outside are clipped).

    obs = [cos(theta), sin(theta), angular velocity], theta = 0 is upright. The torque is too
    weak to lift the pendulum directly: it must swing up first. Each of the 200 steps costs
    theta^2 + 0.1 * velocity^2 + 0.001 * torque^2.
    """
    theta = math.atan2(obs[1], obs[0])
    return -2.0 * theta - 0.5 * obs[2]
# EVOLVE-BLOCK-END
